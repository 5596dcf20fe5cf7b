"""Fixtures for the message senders: an app database with the real migrations, and Prism
serving SendGrid's Mail Send contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from database.session import make_engine, make_sessionmaker, upgrade
from tests.prism import missing_tools, prism_mock


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated SQLite app database of this test's own, so row counts are exact."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def prism_url() -> Iterator[str]:
    """Base URL of `prism mock --errors` over tests/contract/sendgrid/mail_v3.openapi.json."""
    missing = missing_tools()
    if missing:
        pytest.skip(
            f"SendGrid contract check skipped: {' and '.join(missing)} not installed "
            "(Prism runs on Node.js; install Node.js 18.20+ with npm)"
        )
    with prism_mock() as url:
        yield url
