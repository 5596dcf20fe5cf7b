"""A fresh PostgreSQL database, migrated, and dropped afterwards: what the tests, the fault suite
and the benchmark each run on, so none of them touches another's rows (or a shop's)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import sqlalchemy

from database.session import upgrade


@contextlib.contextmanager
def throwaway_database(admin_url: str, prefix: str, revision: str = "head") -> Iterator[str]:
    """Yields the new database's URL: `admin_url` with the database named `prefix_<random>`,
    migrated to `revision` (a schema behind head, for the checks that refuse one)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = admin_url.rsplit("/", 1)[0] + f"/{name}"
            upgrade(url, revision)
            yield url
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
