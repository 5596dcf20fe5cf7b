"""Failing runs leave no personal data behind. An activity's failure is kept in the lifecycle's
history for as long as the history lives (the last one rides on the next attempt's start event),
and the worker logs it with its traceback: neither can be erased, so neither may hold a
customer's address or name. Real failures on the real worker and the time-skipping server: a
database write failing in a send, a template error whose message would quote the customer's
name, a provider whose error body echoes the address; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from database.session import engine_of
from tests.lifecycle_kit import LifecycleKit
from tests.security.echoing_sendgrid import EchoingSendGrid
from tests.security.failing_writes import Write, failing
from tests.security.scan import decoded_text, found_in, log_text

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
NAME = "Zephyrine"
ADDRESS = "Zephyrine.Q@Example.com"  # mixed case: a lower-cased echo must be caught too
PERSONAL = (NAME, ADDRESS)
DAY = 60  # seconds: the whole lifecycle in a few simulated hours
WRITES = [Write("INSERT", "email_outbox"), Write("UPDATE", "email_send", "NEW.status = 'sent'")]

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG: the worker's, the SDK's and SQLAlchemy's."""
    caplog.set_level(logging.DEBUG)
    for name in ("temporalio", "sqlalchemy"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


async def zephyrine_buys(kit: LifecycleKit, order_id: str) -> WorkflowHandle[Any, Any]:
    # MUG-7 has no product override: day_1 renders from day_1/ itself.
    event = await kit.placed_now(order_id, skus=("MUG-7",))
    customer = event.customer.model_copy(update={"first_name": NAME, "email": ADDRESS})
    return await kit.buy(event.model_copy(update={"customer": customer}))


async def until_failed(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], failures: int = 3,
    every: timedelta = timedelta(seconds=DAY / 4),
) -> dict[str, Any]:
    """The lifecycle's description once its pending send has failed `failures` times."""
    for _ in range(200):
        raw = (await handle.describe()).raw_description
        if any(a.attempt > failures and a.HasField("last_failure") for a in raw.pending_activities):
            return MessageToDict(raw)
        await env.sleep(every)
    raise AssertionError("the send never failed")


def last_failure(description: dict[str, Any]) -> str:
    [pending] = description["pendingActivities"]
    return json.dumps(pending["lastFailure"])


async def left_behind(handle: WorkflowHandle[Any, Any], **sources: Any) -> dict[str, set[str]]:
    """Personal values in the finished lifecycle's history and in each of `sources`."""
    history = json.loads((await handle.fetch_history()).to_json())
    found = {
        name: found_in(decoded_text(texts), PERSONAL)
        for name, texts in {"history": history, **sources}.items()
    }
    return {name: values for name, values in found.items() if values}


def logged(logs: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> list[str]:
    out, err = capfd.readouterr()
    assert any("Completing activity as failed" in r.getMessage() for r in logs.records)
    return [*log_text(logs.records), out, err]


@pytest.mark.parametrize("write", WRITES, ids=[w.id for w in WRITES])
async def test_a_failing_database_write_in_a_send(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str], write: Write,
):
    async with LifecycleKit.running(env, sessions, TEMPLATES, day_seconds=DAY) as kit:
        with failing(engine_of(sessions), write):
            handle = await zephyrine_buys(kit, "disk-full")
            description = await until_failed(env, handle)
        summary = await handle.result()
        rows = [row.last_error for row in kit.emails(handle.id)]

    assert await left_behind(
        handle, failure=description, rows=rows, logs=logged(logs, capfd)
    ) == {}
    assert summary.emails_sent == 4  # the write came back and every email went out once
    failure = last_failure(description)
    assert "send_step" in failure and kit.shop_id in failure and "disk-full" in failure
    assert "SQLITE_CONSTRAINT_TRIGGER" in failure or "SQLSTATE P0001" in failure


async def test_a_template_error_quoting_the_customer(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str], tmp_path: Path,
):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    body = templates / "day_1" / "body.txt"
    good = body.read_text()
    # Looks the customer's name up in a list: Jinja's error quotes the name.
    body.write_text(good.replace("Hi {{", "{{ items[customer.first_name] }} Hi {{", 1))
    async with LifecycleKit.running(env, sessions, templates, day_seconds=DAY) as kit:
        handle = await zephyrine_buys(kit, "bad-template")
        description = await until_failed(env, handle)
        [failing_row] = kit.emails(handle.id)
        body.write_text(good)  # the marketer fixes it: the next attempt sends
        summary = await handle.result()

    assert await left_behind(
        handle, failure=description, row=[failing_row.last_error], logs=logged(logs, capfd)
    ) == {}
    assert summary.emails_sent == 4
    failure = last_failure(description)
    assert "day_1/body.txt:2" in failure and "UndefinedError" in failure
    assert failing_row.status == "failing" and "day_1/body.txt:2" in failing_row.last_error


async def test_a_provider_error_echoing_the_address(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
):
    provider = EchoingSendGrid({"day_1": (503, 3), "referral_prompt": (400, 1)})
    with provider.serving() as url:
        async with LifecycleKit.running(
            env, sessions, TEMPLATES, day_seconds=DAY,
            sendgrid_api_key="SG.test-key", sendgrid_host=url,
        ) as kit:
            handle = await zephyrine_buys(kit, "echo")
            description = await until_failed(env, handle, failures=2)
            summary = await handle.result()
            rows = {row.step: row.last_error for row in kit.emails(handle.id)}

    assert await left_behind(
        handle, failure=description, rows=rows, logs=logged(logs, capfd)
    ) == {}
    assert (summary.emails_sent, summary.emails_failed) == (3, 1)
    failure = last_failure(description)
    assert "SendGrid answered 503" in failure and "is not reachable" in failure
    assert rows["referral_prompt"] is not None and "400" in rows["referral_prompt"]
    assert "is not reachable" in rows["referral_prompt"]
