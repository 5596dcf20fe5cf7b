"""Migrations run on purpose: the worker and the intake never migrate at start, they check that
the app database is at the migrations' head and otherwise refuse in one line naming
`loyalloop db upgrade`. Run as an operator runs them, on SQLite and PostgreSQL databases one
migration behind, against a Temporal server that is set up (so the schema is what they refuse)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import make_url
from temporalio.testing import WorkflowEnvironment

from database.session import alembic_config, make_engine, upgrade
from database.throwaway import throwaway_database
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_available

LOYALLOOP = Path(sys.executable).parent / "loyalloop"
# What each command prints once it is serving.
SERVING = {"worker": "worker polling", "api": "Uvicorn running on"}


def head_and_one_behind() -> tuple[str, str]:
    """Read from the migrations themselves, so a new migration moves both."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None
    behind = script.get_revision(head).down_revision
    assert isinstance(behind, str), f"{head} is a merge or the first migration: pick another"
    return head, behind


@pytest.fixture(params=["sqlite", "postgresql"])
def behind_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An app database migrated to the revision before head (PostgreSQL: migrated to head by the
    throwaway helper, then really downgraded one step)."""
    _, behind = head_and_one_behind()
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/app.db"
        command.upgrade(alembic_config(url), behind)
        yield url
        return
    if not _postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: PostgreSQL variant skipped")
    with throwaway_database(POSTGRES_ADMIN_URL, "loyalloop_behind") as url:
        command.downgrade(alembic_config(url), behind)
        yield url


def revisions(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def operator_env(env: WorkflowEnvironment, url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("LOYALLOOP_", "TEMPORAL_", "DATABASE_URL"))}
    return clean | {"TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                    "DATABASE_URL": url,
                    "LOYALLOOP_LINK_SECRET": "a-real-link-secret-for-tests",
                    "LOYALLOOP_SHOP_KEYS": "acme:a-shop-key-of-20-chars"}


def args(name: str) -> list[str]:
    return [str(LOYALLOOP), name, *(["--port", "0"] if name == "api" else [])]


def serves(name: str, environ: dict[str, str], cwd: Path) -> bool:
    """Start the command and stop it (SIGTERM) once it says it is serving."""
    process = subprocess.Popen(args(name), env=environ, cwd=cwd, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            if SERVING[name] in line:
                return True
        return False
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print("".join(seen))


@pytest.mark.parametrize("name", ["worker", "api"])
def test_refuses_a_database_one_migration_behind_and_serves_once_upgraded(
    env: WorkflowEnvironment, behind_url: str, tmp_path: Path, name: str
):
    head, behind = head_and_one_behind()
    environ = operator_env(env, behind_url)
    where = make_url(behind_url).render_as_string(hide_password=True)

    done = subprocess.run(args(name), env=environ, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: the app database {where} is at migration {behind}, not {head}: "
        "run `loyalloop db upgrade`"
    )
    assert revisions(behind_url) == {behind}, "refusing migrates nothing"

    upgraded = subprocess.run([str(LOYALLOOP), "db", "upgrade"], env=environ, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    assert upgraded.returncode == 0, upgraded.stderr
    assert serves(name, environ, tmp_path)


def test_an_empty_database_is_refused_untouched(env: WorkflowEnvironment, tmp_path: Path):
    """A database never migrated (a fresh deployment that skipped its migration job) is not
    migrated behind the operator's back."""
    url = f"sqlite:///{tmp_path}/app.db"
    done = subprocess.run(args("worker"), env=operator_env(env, url), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    head, _ = head_and_one_behind()
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: the app database {url} is at migration none, not {head}: "
        "run `loyalloop db upgrade`"
    )
    upgrade(url)  # and the check passes on what `db upgrade` leaves
    assert serves("worker", operator_env(env, url), tmp_path)
