"""Engines, sessions and migrations for the app database."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Row, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# A row of a Core select, whatever its columns.
AnyRow = Row[*tuple[Any, ...]]


class _NoRowsInLogs(logging.Filter):
    """SQLAlchemy echoes every row it fetches at DEBUG (customers' addresses and names), and
    `hide_parameters` does not cover rows: drop those records, whatever level an operator turns
    logging up to. Statements stay, their parameters hidden."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Row %r"


logging.getLogger("sqlalchemy.engine.Engine").addFilter(_NoRowsInLogs())


def make_engine(url: str) -> Engine:
    """`hide_parameters`: a statement's values (a subject with the customer's name, an
    address) stay out of its error messages, which reach activity failures and the workflow
    history, and out of the statement log."""
    if url.startswith("sqlite"):
        _make_sqlite_folder(url)
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True
    )


def local_sqlite_file(url: str) -> str | None:
    """The path of a SQLite database kept in a file on this machine; None for any other."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() == "sqlite" and path and path != ":memory:":
        return path
    return None


def _make_sqlite_folder(url: str) -> None:
    """A fresh checkout has no `.loyalloop/` yet: SQLite creates the file, not its folder."""
    if path := local_sqlite_file(url):
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def lock_for_decision(connection: Connection) -> None:
    """Serialize a read-then-write decision on SQLite as the row locks do on PostgreSQL: SQLite
    has no row locks (FOR UPDATE is dropped) and pysqlite begins a transaction only at its first
    write, so two decisions could both read "not sent yet". BEGIN IMMEDIATE takes the database's
    write lock before the first read; WAL readers are not blocked."""
    if connection.dialect.name != "sqlite":
        return
    if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine behind a sessionmaker, for hot paths that run Core statements on a
    connection instead of the ORM's unit of work."""
    return sessions.kw["bind"]  # type: ignore[no-any-return]


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration (up to `revision`): `loyalloop db upgrade`, `dev`, `simulate` and
    the tests do, on purpose; the worker and the intake only check (`require_head`)."""
    _make_sqlite_folder(url)
    command.upgrade(alembic_config(url), revision)


def displayed(url: str) -> str:
    """The URL as a banner or an error may show it: its password masked."""
    return make_url(url).render_as_string(hide_password=True)


class SchemaNotAtHead(RuntimeError):
    """The app database is not at the migrations' head: said in one line with the command."""


UPGRADE_COMMAND = "loyalloop db upgrade"


def require_head(url: str) -> None:
    """Refuse to serve on a schema other than this code's: a worker or an intake that migrated
    at start would race another process doing the same, and change a production schema as a side
    effect of a restart. Compares with Alembic's head(s), whatever migrations exist."""
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    if current == heads:
        return
    at = ", ".join(sorted(current)) or "none"
    raise SchemaNotAtHead(
        f"the app database {displayed(url)} is at migration {at}, "
        f"not {', '.join(sorted(heads))}: run `{UPGRADE_COMMAND}`"
    )
