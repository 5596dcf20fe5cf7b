"""CI never goes green without PostgreSQL: there the fault suite must run, not skip."""

from __future__ import annotations

import pytest
import sqlalchemy.exc

from tests.conftest import PostgresRequired, _postgres_available

# Nothing listens on port 1; each test its own URL, since the answer is cached per URL.
NOBODY = "postgresql+psycopg2://postgres@127.0.0.1:1/{}"


def test_unreachable_postgres_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(PostgresRequired, match="CI=true and PostgreSQL is not reachable"):
        _postgres_available(NOBODY.format("under_ci"))


def test_unreachable_postgres_skips_on_a_laptop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert _postgres_available(NOBODY.format("laptop")) is False


def test_a_broken_url_is_an_error_not_an_absent_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(sqlalchemy.exc.NoSuchModuleError):
        _postgres_available("postgresql+nosuchdriver://postgres@127.0.0.1:5432/postgres")
