"""Nothing lost: a purchase stored but not started (Temporal down, or the intake killed between
the two) is completed by the shop's retry; concurrent duplicates start one lifecycle."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from database.models import Customer, Purchase
from intake.service import LifecycleService
from intake.store import workflow_id_for
from shop_events.schemas import PurchaseEvent
from tests.intake.conftest import Intake, assert_refusal, make_intake_app


def started_at(intake: Intake, order_id: str):  # type: ignore[no-untyped-def]
    with intake.kit.sessions() as session:
        return session.scalars(
            select(Purchase.lifecycle_started_at).where(
                Purchase.shop_id == intake.shop_id, Purchase.order_id == order_id
            )
        ).all()


async def test_temporal_down_after_the_store_then_the_retry_completes_it(intake: Intake):
    unreachable = await Client.connect("127.0.0.1:1", lazy=True)
    settings = intake.kit.settings
    service = LifecycleService(
        intake.kit.sessions, unreachable, task_queue=settings.lifecycle_task_queue,
        email_task_queue=settings.email_task_queue, rules=intake.kit.rules,
    )
    app = make_intake_app(intake.kit, service, shop_keys=f"{intake.shop_id}:{intake.key}")
    event = intake.purchase("7001", placed_at=(await intake.kit.now()).isoformat())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as down:
        refused = await down.post("/v1/purchases", json=event, headers=intake.auth)
    assert_refusal(refused, 503)
    assert refused.headers["Retry-After"]
    assert started_at(intake, "7001") == [None]  # stored, not started
    handle = intake.kit.handle(workflow_id_for(intake.shop_id, "7001"))
    with pytest.raises(RPCError) as missing:
        await handle.describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND

    retried = await intake.post("/v1/purchases", event)  # already stored: 200, and started now
    assert retried.status_code == 200, retried.text
    summary = await handle.result()
    # day_1, day_7, referral_prompt and day_21 are due: each sent once, none skipped or failed
    assert (summary.stage, summary.emails_sent, summary.emails_skipped,
            summary.emails_failed) == ("completed", 4, {}, 0)
    [started] = started_at(intake, "7001")  # stamped by the lifecycle's first step
    assert started is not None


async def test_killed_between_store_and_start_then_the_retry_completes_it(intake: Intake):
    event = intake.purchase("7002")
    stored = PurchaseEvent.model_validate(event)  # what the killed call stored: the same body
    await asyncio.to_thread(intake.kit.service._store_purchase, stored)
    assert started_at(intake, "7002") == [None]

    retried = await intake.post("/v1/purchases", event)
    assert retried.status_code == 200
    await intake.kit.client.get_workflow_handle(retried.json()["workflow_id"]).describe()


async def test_a_retry_after_the_start_starts_nothing_new(intake: Intake):
    """Started, and the answer lost: the retry is refused a second start and names the same
    lifecycle."""
    event = intake.purchase("7005")
    first = await intake.post("/v1/purchases", event)
    handle = intake.kit.client.get_workflow_handle(first.json()["workflow_id"])
    run_id = (await handle.describe()).run_id
    retried = await intake.post("/v1/purchases", event)
    assert (retried.status_code, retried.json()) == (200, first.json())
    assert (await handle.describe()).run_id == run_id


def stored(intake: Intake, *order_ids: str) -> list[tuple[str, str, int]]:
    """(order id, workflow id, customer row) of each of this shop's purchases `order_ids`."""
    with intake.kit.sessions() as session:
        return [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(Purchase.order_id, Purchase.workflow_id, Purchase.customer_pk)
            .where(Purchase.shop_id == intake.shop_id, Purchase.order_id.in_(order_ids))
            .order_by(Purchase.order_id)
        )]


def customers(intake: Intake) -> list[tuple[int, str, str | None]]:
    with intake.kit.sessions() as session:
        return [tuple(row) for row in session.execute(  # type: ignore[misc]
            select(Customer.id, Customer.customer_id, Customer.referral_code)
            .where(Customer.shop_id == intake.shop_id)
        )]


async def test_concurrent_duplicates_start_one_lifecycle(intake: Intake):
    event = intake.purchase("7003")
    responses = await asyncio.gather(*(intake.post("/v1/purchases", event) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    workflow_id = workflow_id_for(intake.shop_id, "7003")
    assert [r.json() for r in responses] == [{"workflow_id": workflow_id}] * 8
    await intake.settled()
    [(customer_pk, _, code)] = customers(intake)
    assert stored(intake, "7003") == [("7003", workflow_id, customer_pk)]
    assert code is not None  # given by the one lifecycle's first step
    assert len(started_at(intake, "7003")) == 1 and started_at(intake, "7003")[0] is not None
    assert (await intake.kit.client.get_workflow_handle(workflow_id).describe()).run_id


async def test_concurrent_first_purchases_of_one_customer_are_all_kept(intake: Intake):
    orders = [f"7004-{n}" for n in range(6)]
    events = [intake.purchase(order) for order in orders]
    responses = await asyncio.gather(*(intake.post("/v1/purchases", e) for e in events))
    assert [r.status_code for r in responses] == [202] * 6
    ids = [workflow_id_for(intake.shop_id, order) for order in orders]
    assert [r.json() for r in responses] == [{"workflow_id": w} for w in ids]
    await intake.settled()
    [(customer_pk, customer_id, code)] = customers(intake)  # one customer, one referral code
    assert (customer_id, code is not None) == ("c-42", True)
    assert stored(intake, *orders) == [
        (order, workflow_id, customer_pk) for order, workflow_id in zip(orders, ids, strict=True)]
    with intake.kit.sessions() as session:  # each started, and told of the others or the first
        rows = session.execute(
            select(Purchase.lifecycle_started_at, Purchase.repeat_routed_at)
            .where(Purchase.shop_id == intake.shop_id)
        ).all()
    assert len(rows) == 6 and all(started and routed for started, routed in rows), rows
    for workflow_id in ids:
        assert (await intake.kit.client.get_workflow_handle(workflow_id).describe()).run_id
