"""The intake's happy paths over HTTP: a purchase starts one lifecycle, a repeat starts nothing,
refunds and unsubscribes reach the lifecycles, the timeline is the shop's own."""

from __future__ import annotations

from sqlalchemy import select

from database.models import Customer, Purchase
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
    summary = await intake.kit.handle(response.json()["workflow_id"]).result()
    assert summary.emails_sent >= 3
    with intake.kit.sessions() as session:  # stamped by the lifecycle's first step
        [started_at] = session.scalars(select(Purchase.lifecycle_started_at).where(
            Purchase.workflow_id == response.json()["workflow_id"])).all()
    assert started_at is not None

    timeline = await intake.http.get(f"/v1/lifecycles/{intake.shop_id}/2001", headers=intake.auth)
    assert timeline.status_code == 200, timeline.text
    assert timeline.json()["workflow_id"] == response.json()["workflow_id"]


async def test_refund_reaches_the_lifecycle_once_and_never_exceeds_the_order(intake: Intake):
    await intake.post("/v1/purchases", intake.purchase("3001", total="49.00"))
    refund = {"shop_id": intake.shop_id, "order_id": "3001", "amount": "20.00",
              "reason": "damaged", "refund_id": "r-1"}
    first = await intake.post("/v1/refunds", refund)
    assert first.status_code == 202, first.text
    again = await intake.post("/v1/refunds", refund)
    assert again.status_code == 200 and again.json() == first.json(), again.text

    before = intake.written()
    too_much = await intake.post("/v1/refunds", refund | {"amount": "29.01", "refund_id": "r-2"})
    assert_refusal(too_much, 422, "amount")
    unknown = await intake.post("/v1/refunds", refund | {"order_id": "nope", "refund_id": "r-3"})
    assert_refusal(unknown, 404, "order_id")
    assert intake.written() == before


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
