"""The intake's happy paths over HTTP: a purchase starts one lifecycle, a repeat starts nothing,
refunds and unsubscribes reach the lifecycles, the timeline is the shop's own."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from database.models import Customer, Purchase, Refund
from intake.store import workflow_id_for
from tests.intake.conftest import Intake, assert_refusal


async def test_new_purchase_is_accepted_and_the_same_order_again_starts_nothing(intake: Intake):
    event = intake.purchase("1001")
    first = await intake.post("/v1/purchases", event)
    assert first.status_code == 202, first.text
    workflow_id = first.json()["workflow_id"]
    assert workflow_id == workflow_id_for(intake.shop_id, "1001")

    again = await intake.post("/v1/purchases", event)
    assert (again.status_code, again.json()) == (200, {"workflow_id": workflow_id})

    description = await intake.kit.client.get_workflow_handle(workflow_id).describe()
    assert description.run_id
    with intake.kit.sessions() as session:
        stored = session.scalars(select(Purchase).where(Purchase.workflow_id == workflow_id)).all()
    assert len(stored) == 1


async def test_a_purchase_through_http_runs_its_whole_lifecycle(intake: Intake):
    response = await intake.post("/v1/purchases", intake.purchase("2001", placed_at=(
        await intake.kit.now()).isoformat()))
    workflow_id = response.json()["workflow_id"]
    summary = await intake.kit.handle(workflow_id).result()
    # day_1, day_7, referral_prompt and day_21 are due: each sent once, none skipped or failed
    assert (summary.stage, summary.emails_sent, summary.emails_skipped,
            summary.emails_failed) == ("completed", 4, {}, 0)
    assert [(e.step, e.status) for e in intake.kit.emails(workflow_id)] == [
        ("day_1", "sent"), ("day_7", "sent"), ("referral_prompt", "sent"), ("day_21", "sent")]
    assert len(intake.kit.outbox(workflow_id)) == 4
    with intake.kit.sessions() as session:  # stamped by the lifecycle's first step
        [started_at] = session.scalars(select(Purchase.lifecycle_started_at).where(
            Purchase.workflow_id == workflow_id)).all()
    assert started_at is not None

    timeline = await intake.http.get(f"/v1/lifecycles/{intake.shop_id}/2001", headers=intake.auth)
    assert timeline.status_code == 200, timeline.text
    assert timeline.json()["workflow_id"] == workflow_id


async def test_refund_reaches_the_lifecycle_once_and_never_exceeds_the_order(intake: Intake):
    creator = intake.kit.add_creator("MAYA")
    bought = await intake.post("/v1/purchases", intake.purchase(
        "3001", total="49.00", referral={"code": creator},
        placed_at=(await intake.kit.now()).isoformat()))
    assert bought.status_code == 202, bought.text
    workflow_id = bought.json()["workflow_id"]
    refund = {"shop_id": intake.shop_id, "order_id": "3001", "amount": "20.00",
              "reason": "damaged", "refund_id": "r-1"}
    first = await intake.post("/v1/refunds", refund)
    assert first.status_code == 202, first.text
    again = await intake.post("/v1/refunds", refund)
    assert again.status_code == 200 and again.json() == first.json(), again.text
    summary = await intake.kit.handle(workflow_id).result()

    with intake.kit.sessions() as session:
        [stored] = session.scalars(select(Refund).where(Refund.shop_id == intake.shop_id)).all()
        refunded = session.scalar(select(Purchase.refunded_amount).where(
            Purchase.workflow_id == workflow_id))
    assert first.json() == {"workflow_id": workflow_id, "refund_id": stored.id}
    assert (stored.order_id, stored.refund_key, stored.amount, stored.reason) == (
        "3001", "r-1", Decimal("20.00"), "damaged")
    assert refunded == Decimal("20.00")
    assert summary.stage == "refunded"
    assert [(c.milestone, c.amount, c.status, c.order_id, c.workflow_id)
            for c in intake.kit.credits(creator)] == [
        ("referral", Decimal("5.00"), "reversed", "3001", workflow_id)]

    before = await intake.written()
    too_much = await intake.post("/v1/refunds", refund | {"amount": "29.01", "refund_id": "r-2"})
    assert_refusal(too_much, 422, "amount")
    assert too_much.json()["problems"] == [{
        "field": "amount", "problem": "refund 29.01 exceeds the 29.00 left to refund on this order"
    }]
    unknown = await intake.post("/v1/refunds", refund | {"order_id": "nope", "refund_id": "r-3"})
    assert_refusal(unknown, 404, "order_id")
    assert await intake.written() == before


async def test_unsubscribe_reaches_every_lifecycle_of_the_customer(intake: Intake):
    for order_id in ("4001", "4002"):
        await intake.post("/v1/purchases", intake.purchase(order_id))
    response = await intake.post(
        "/v1/unsubscribes", {"shop_id": intake.shop_id, "customer_id": "c-42"}
    )
    assert (response.status_code, response.json()) == (200, {"lifecycles_signalled": 2})
    with intake.kit.sessions() as session:
        customer = session.scalar(select(Customer).where(Customer.shop_id == intake.shop_id))
    assert customer is not None and customer.unsubscribed_at is not None


async def test_timeline_of_an_unknown_order_is_404(intake: Intake):
    response = await intake.http.get(f"/v1/lifecycles/{intake.shop_id}/missing",
                                     headers=intake.auth)
    assert_refusal(response, 404, "order_id")


async def test_healthz_checks_the_database_and_temporal(intake: Intake):
    response = await intake.http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
