"""The intake over HTTP (httpx on the ASGI app), wired to the real service, real workers on the
time-skipping server and a real database. Two shops are configured, so every test can check
that one shop's key does not reach the other's orders.

`await intake.written()` is every row of every table, read once the lifecycles this test started
have nothing in flight: a refusal must leave it as it found it, inserts, updates and deletes
alike (a refusal that unsubscribes first and answers 403 after is caught)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, inspect, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from database.models import Purchase
from database.session import engine_of
from intake.app import create_app
from intake.service import LifecycleService
from temporal_client import temporal_binary
from tests.conftest import register_search_attributes
from tests.lifecycle_kit import LifecycleKit

SHOP_DOMAIN = "ana-kettles.myshopify.com"
SETTLE_S = 30.0  # how long a lifecycle may take to finish what it was given, before a snapshot

Key = tuple[Any, ...]


class Rows:
    """Every row of every table, by table and primary key: what `written()` returns. Equal
    snapshots hold the same rows with the same values; `changes_since` says which differ."""

    def __init__(self, tables: dict[str, tuple[tuple[str, ...], dict[Key, Key]]]) -> None:
        self.tables = tables

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rows) and self.tables == other.tables

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}: {len(rows)}" for name, (_, rows) in self.tables.items())
        return f"Rows({counts})"

    def changes_since(self, before: Rows) -> list[str]:
        """Each row inserted, updated (with its columns, old -> new) or deleted since `before`."""
        changes = []
        for name in sorted(set(self.tables) | set(before.tables)):
            columns, now = self.tables.get(name, ((), {}))
            _, then = before.tables.get(name, ((), {}))
            for key in sorted(set(now) | set(then), key=repr):
                if key not in then:
                    changes.append(f"{name} {key}: inserted")
                elif key not in now:
                    changes.append(f"{name} {key}: deleted")
                elif now[key] != then[key]:
                    changed = [f"{column} {old!r:.60} -> {new!r:.60}"
                               for column, old, new in zip(columns, then[key], now[key],
                                                           strict=True) if old != new]
                    changes.append(f"{name} {key}: updated {'; '.join(changed)}")
        return changes


def read_rows(engine: Engine) -> Rows:
    """Every table the database has (not only those the models name), with every column.
    Values are the driver's own, so nothing a type conversion rounds off hides a change."""
    found = inspect(engine)
    quote = engine.dialect.identifier_preparer.quote
    tables: dict[str, tuple[tuple[str, ...], dict[Key, Key]]] = {}
    with engine.connect() as connection:
        for name in sorted(found.get_table_names()):
            result = connection.exec_driver_sql(f"SELECT * FROM {quote(name)}")
            columns = tuple(result.keys())
            primary = found.get_pk_constraint(name)["constrained_columns"] or list(columns)
            at = [columns.index(column) for column in primary]
            rows = [tuple(row) for row in result]
            tables[name] = (columns, {tuple(row[i] for i in at): row for row in rows})
    return Rows(tables)


_WORKFLOW_TASK_OPENS = EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
_WORKFLOW_TASK_CLOSES = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
_ACTIVITY_CLOSES = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}
_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}


async def busy(client: Client, workflow_id: str) -> bool:
    """Whether the lifecycle has work in flight: a workflow task not completed (its database
    steps run inside it, as local activities) or an activity not closed. One waiting on its
    timers writes nothing until the test moves the clock; one never started writes nothing."""
    try:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    task_open, activities = False, set()
    for event in history.events:
        if event.event_type in _CLOSED:
            return False
        if event.event_type == _WORKFLOW_TASK_OPENS:
            task_open = True
        elif event.event_type == _WORKFLOW_TASK_CLOSES:
            task_open = False  # a failed or timed-out task is tried again: still open
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities.add(event.event_id)
        elif (attributes := _ACTIVITY_CLOSES.get(event.event_type)) is not None:
            activities.discard(getattr(event, attributes).scheduled_event_id)
    return task_open or bool(activities)


@dataclass
class Intake:
    http: httpx.AsyncClient
    kit: LifecycleKit
    key: str
    other_shop: str
    other_key: str
    shopify_secret: str
    purchases_before: int = 0  # the highest purchase id before this test: later ones are its own

    @property
    def shop_id(self) -> str:
        return self.kit.shop_id

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def purchase(self, order_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """A valid purchase event of this shop, as JSON, with `fields` replaced."""
        event = self.kit.purchase(order_id or f"o-{uuid.uuid4().hex[:8]}").model_dump(mode="json")
        event.pop("referral")
        return event | fields

    async def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post(path, content=content, headers=self.auth | headers)

    def signed(self, body: bytes, secret: str | None = None) -> dict[str, str]:
        digest = hmac.new((secret or self.shopify_secret).encode(), body, hashlib.sha256).digest()
        return {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
                "X-Shopify-Topic": "orders/create", "Content-Type": "application/json",
                "X-Shopify-Shop-Domain": SHOP_DOMAIN}

    async def written(self) -> Rows:
        """Every row of every table once this test's lifecycles are settled, to prove a refusal
        wrote nothing: no insert, no update, no delete, here or through a lifecycle it told."""
        await self.settled()
        return await asyncio.to_thread(read_rows, engine_of(self.kit.sessions))

    async def settled(self) -> None:
        """Waits until no lifecycle of a purchase stored in this test has work in flight (its
        first step, a refund it was told of), so the rows read next stay as they are until the
        test sends something again."""
        with self.kit.sessions() as session:
            waiting = set(session.scalars(
                select(Purchase.workflow_id).where(Purchase.id > self.purchases_before)
            ))
        deadline = time.monotonic() + SETTLE_S
        while waiting:
            states = await asyncio.gather(*(busy(self.kit.client, w) for w in waiting))
            waiting = {w for w, still in zip(waiting, states, strict=True) if still}
            if waiting and time.monotonic() > deadline:
                raise AssertionError(f"lifecycles still busy after {SETTLE_S} s: {waiting}")
            if waiting:
                await asyncio.sleep(0.05)

    def has_purchase(self, order_id: str) -> bool:
        with self.kit.sessions() as session:
            return session.scalar(select(func.count()).select_from(Purchase).where(
                Purchase.shop_id == self.shop_id, Purchase.order_id == order_id)) == 1


def make_intake_app(kit: LifecycleKit, service: LifecycleService | None = None, **keys: str):  # type: ignore[no-untyped-def]
    settings = kit.settings.model_copy(update={
        name: SecretStr(value) if name in ("shop_keys", "shopify_secrets") else value
        for name, value in keys.items()
    })
    return create_app(settings, service or kit.service)


@pytest.fixture
async def env(
    env: WorkflowEnvironment, request: pytest.FixtureRequest
) -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of each test's own (a quarter second to start): intake tests leave
    lifecycles open, and one ended while its task is in flight stops that server's clock for
    every later test (a test-server quirk)."""
    if request.config.getoption("--workflow-environment") != "time-skipping":
        yield env
        return
    own = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_binary("temporal-test-server")
    )
    await register_search_attributes(own.client)
    yield own
    await own.shutdown()


@pytest.fixture
async def intake(kit: LifecycleKit) -> AsyncIterator[Intake]:
    key, other_key, secret = (uuid.uuid4().hex for _ in range(3))
    other_shop = f"other-{uuid.uuid4().hex[:8]}"
    app = make_intake_app(
        kit, shop_keys=f"{kit.shop_id}:{key},{other_shop}:{other_key}",
        shopify_secrets=f"{kit.shop_id}:{secret}", shopify_domains=f"{kit.shop_id}:{SHOP_DOMAIN}",
    )
    with kit.sessions() as session:
        purchases_before = session.scalar(select(func.max(Purchase.id))) or 0
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        yield Intake(http, kit, key, other_shop, other_key, secret, purchases_before)


def pytest_assertrepr_compare(op: str, left: Any, right: Any) -> list[str] | None:
    """`assert await intake.written() == before` names the rows that changed."""
    if op == "==" and isinstance(left, Rows) and isinstance(right, Rows):
        return ["rows written since the snapshot (left: now, right: before):",
                *left.changes_since(right)]
    return None


def assert_refusal(response: httpx.Response, status: int, field: str | None = None) -> None:
    """A refusal has the one JSON shape, names the field, and shows no stack trace."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert body["problems"], body
    for problem in body["problems"]:
        assert set(problem) == {"field", "problem"}, problem
        assert "Traceback" not in problem["problem"]
    if field is not None:
        assert field in [p["field"] for p in body["problems"]], body
