"""Migrations run on purpose: an everyday command (`inspect`, `outbox`, `credits`, …) run from the
production image never migrates a shop's PostgreSQL schema as a side effect; it refuses in one
line naming `loyalloop db upgrade`, as the worker and the intake do. A laptop's own SQLite file is
created and migrated by whichever command comes first. Run as an operator runs them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import make_url

from database.session import alembic_config
from database.throwaway import throwaway_database
from tests.cli.shell import clean_environment, loyalloop
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_available
from tests.stack.test_schema_at_head import head_and_one_behind, revisions

AUDITED = ("--reason", "a test", "--actor", "tester")
# Every command that reads or writes the app database, except `db upgrade`, `dev` and `simulate`
# (which migrate on purpose); each one's database set-up is cli/common.py's `app_database`.
EVERYDAY = [
    ["inspect", "acme", "1001"],
    ["find", "--customer", "c-1"],
    ["outbox"],
    ["credits"],
    ["credits", "summary"],
    ["creators", "list"],
    ["creators", "add", "MAYA1", "--name", "Maya", "--email", "maya@example.com"],
    ["demo-purchase"],
    ["erase-customer", "acme", "c-1", *AUDITED],
    ["resubscribe", "acme", "c-1", *AUDITED],
    ["unsubscribe", "acme", "c-1", *AUDITED],
    ["refund", "acme", "1001", "1.00", *AUDITED],
    ["cancel", "acme", "1001", *AUDITED],
    ["resend", "acme", "1001", "day_7", *AUDITED],
]


def _needs_postgres() -> None:
    if not _postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}")


@pytest.fixture
def behind_url() -> Iterator[str]:
    """A PostgreSQL database of its own, migrated to the revision before head."""
    _needs_postgres()
    _, behind = head_and_one_behind()
    with throwaway_database(POSTGRES_ADMIN_URL, "loyalloop_cli_behind", behind) as url:
        yield url


def _env(url: str) -> dict[str, str]:
    # No Temporal answers here: a command that got past the database would say so instead.
    return clean_environment(DATABASE_URL=url, TEMPORAL_ADDRESS="127.0.0.1:1")


@pytest.mark.parametrize("args", EVERYDAY, ids=lambda args: " ".join(args[:2]))
def test_a_postgres_schema_behind_is_refused_in_one_line_and_left_as_it_is(
    behind_url: str, tmp_path: Path, args: list[str]
) -> None:
    head, behind = head_and_one_behind()
    where = make_url(behind_url).render_as_string(hide_password=True)
    done = loyalloop(*args, cwd=tmp_path, env=_env(behind_url), timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: the app database {where} is at migration {behind}, not {head}: "
        "run `loyalloop db upgrade`"
    ]
    assert revisions(behind_url) == {behind}, f"`loyalloop {' '.join(args)}` migrated it"


def test_a_postgres_schema_at_head_is_served(tmp_path: Path) -> None:
    _needs_postgres()
    with throwaway_database(POSTGRES_ADMIN_URL, "loyalloop_cli_head") as url:
        done = loyalloop("outbox", cwd=tmp_path, env=_env(url), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the outbox is empty\n"


@pytest.mark.parametrize(("args", "says"), [
    (["credits", "--format", "json"], "[]"),
    (["credits", "summary", "--json"], "[]"),
    (["outbox"], "the outbox is empty"),
])
def test_a_fresh_sqlite_file_is_created_and_migrated(
    tmp_path: Path, args: list[str], says: str
) -> None:
    folder = tmp_path / "not-yet" / ".loyalloop"
    url = f"sqlite:///{folder}/loyalloop.db"
    done = loyalloop(*args, cwd=tmp_path, env=_env(url), timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == says
    assert revisions(url) == {head_and_one_behind()[0]}


def test_a_sqlite_file_behind_is_brought_to_head(tmp_path: Path) -> None:
    """The laptop's own file: migrating it is the convenience a newcomer expects."""
    head, behind = head_and_one_behind()
    url = f"sqlite:///{tmp_path}/app.db"
    command.upgrade(alembic_config(url), behind)
    done = loyalloop("credits", "summary", cwd=tmp_path, env=_env(url), timeout=60)
    assert done.returncode == 0, done.stderr
    assert revisions(url) == {head}
