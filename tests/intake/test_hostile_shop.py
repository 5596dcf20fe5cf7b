"""What the worst shop integration could send: ids that collide across shops, a customer id
reused for another person, refund ids reused for another order, money written every way
`Decimal` reads, control characters, conflicting repeats and clocks far off. Each is refused
with the field that is wrong, or kept apart, and nothing half-written (issue 15)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.common import WorkflowIDConflictPolicy

from database.models import Customer, Purchase, Refund
from intake.store import workflow_id_for
from messages.links import link_token, verify_link_token
from tests.intake.conftest import Intake, assert_refusal, make_intake_app
from workflows.contract import LifecycleInput
from workflows.lifecycle import PurchaseLifecycle


def _rows(intake: Intake, model: Any, **where: Any) -> int:
    with intake.kit.sessions() as session:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return int(session.scalar(query) or 0)


def _refunds(intake: Intake, order_id: str) -> tuple[list[tuple[str, Decimal, str]], Decimal]:
    """The order's refund rows (key, amount, reason) and the amount its purchase counts as
    refunded."""
    with intake.kit.sessions() as session:
        rows = session.execute(
            select(Refund.refund_key, Refund.amount, Refund.reason)
            .where(Refund.shop_id == intake.shop_id, Refund.order_id == order_id)
            .order_by(Refund.id)
        ).all()
        refunded = session.scalar(select(Purchase.refunded_amount).where(
            Purchase.shop_id == intake.shop_id, Purchase.order_id == order_id))
    return [tuple(row) for row in rows], refunded  # type: ignore[return-value]


def _refund_ids(intake: Intake, order_id: str) -> list[int]:
    with intake.kit.sessions() as session:
        return list(session.scalars(select(Refund.id).where(
            Refund.shop_id == intake.shop_id, Refund.order_id == order_id).order_by(Refund.id)))


@pytest.fixture
async def neighbours(intake: Intake):  # type: ignore[no-untyped-def]
    """Two shops whose ids and order ids spell the same `purchase-…-…` when joined by `-`."""
    base = intake.shop_id.replace("-", "")
    dashed, plain = f"{base}-eu", base
    app = make_intake_app(
        intake.kit, shop_keys=f"{dashed}:key-of-the-dashed-shop,{plain}:key-of-the-plain-shop"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://intake") as http:

        async def post(shop: str, order: str, **fields: Any) -> httpx.Response:
            key = "key-of-the-dashed-shop" if shop == dashed else "key-of-the-plain-shop"
            event = intake.purchase(order, shop_id=shop, **fields)
            return await http.post("/v1/purchases", json=event,
                                   headers={"Authorization": f"Bearer {key}"})

        yield dashed, plain, post, http


async def test_ids_of_two_shops_never_collide(intake: Intake, neighbours: Any):
    dashed, plain, post, _ = neighbours
    first = await post(dashed, "1001")
    second = await post(plain, "eu-1001")
    assert (first.status_code, second.status_code) == (202, 202), second.text
    ids = {first.json()["workflow_id"], second.json()["workflow_id"]}
    assert ids == {workflow_id_for(dashed, "1001"), workflow_id_for(plain, "eu-1001")}
    assert len(ids) == 2
    for workflow_id in ids:
        assert (await intake.kit.client.get_workflow_handle(workflow_id).describe()).run_id


async def test_a_lifecycle_under_its_old_id_is_still_reached(intake: Intake, neighbours: Any):
    """A lifecycle started before ids were unambiguous keeps its stored id: a refund finds it
    there, and a neighbour's order that now spells that old id is a 409, not a 503."""
    dashed, plain, post, http = neighbours
    accepted = await post(dashed, "2001")
    assert accepted.status_code == 202, accepted.text
    old_id = f"purchase-{dashed}-2001"  # as the intake spelled it before
    new_id = accepted.json()["workflow_id"]
    await intake.kit.client.get_workflow_handle(new_id).terminate("stand-in for an old id")
    with intake.kit.sessions.begin() as session:
        purchase = session.scalars(select(Purchase).where(Purchase.workflow_id == new_id)).one()
        purchase.workflow_id = old_id
        purchase.lifecycle_started_at = None
    handle = await intake.kit.client.start_workflow(
        PurchaseLifecycle.run,
        LifecycleInput(dashed, "2001", intake.kit.rules, intake.kit.settings.email_task_queue),
        id=old_id, task_queue=intake.kit.settings.lifecycle_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
    )
    refund = {"shop_id": dashed, "order_id": "2001", "amount": "49.00", "refund_id": "r-old"}
    answered = await http.post("/v1/refunds", json=refund,
                               headers={"Authorization": "Bearer key-of-the-dashed-shop"})
    assert answered.status_code == 202, answered.text
    assert answered.json()["workflow_id"] == old_id
    summary = await intake.kit.handle(old_id).result()
    assert summary.stage == "refunded"
    assert handle.id == old_id

    before = await intake.written()
    taken = await post(plain, "eu-2001")  # the new spelling of shop `plain`'s order is old_id
    assert_refusal(taken, 409, "order_id")
    assert await intake.written() == before


def test_signed_links_tell_every_shop_and_customer_pair_apart():
    assert link_token("s", "a:b", "c") != link_token("s", "a", "b:c")
    assert verify_link_token("s", "a:b", "c", link_token("s", "a:b", "c"))
    assert not verify_link_token("s", "a", "b:c", link_token("s", "a:b", "c"))
    assert not verify_link_token("s", "a", "b", link_token("s", "a", "b")[:-1])
    assert not verify_link_token("other secret", "a", "b", link_token("s", "a", "b"))


async def test_a_reused_customer_id_never_sends_one_persons_email_to_another(intake: Intake):
    now = (await intake.kit.now()).isoformat()
    alice = intake.purchase("G1", placed_at=now, customer={
        "id": "0", "email": "alice@example.com", "first_name": "Alice",
        "marketing_consent": True})
    first = await intake.post("/v1/purchases", alice)
    assert first.status_code == 202, first.text

    before = await intake.written()
    bob = intake.purchase("G2", placed_at=now, customer={
        "id": "0", "email": "bob@example.com", "first_name": "Bob", "marketing_consent": True})
    refused = await intake.post("/v1/purchases", bob)
    assert_refusal(refused, 409, "customer.id")
    assert "alice" not in refused.text
    assert await intake.written() == before

    again = await intake.post("/v1/purchases", intake.purchase("G3", placed_at=now, customer={
        "id": "0", "email": "Alice@Example.COM", "first_name": "Alice",
        "marketing_consent": True}))
    assert again.status_code == 202, again.text  # the same mailbox, written otherwise

    await intake.kit.handle(first.json()["workflow_id"]).result()
    await intake.kit.handle(again.json()["workflow_id"]).result()
    with intake.kit.sessions() as session:
        customer = session.scalars(select(Customer).where(
            Customer.shop_id == intake.shop_id, Customer.customer_id == "0")).one()
    sent = [*intake.kit.outbox(first.json()["workflow_id"]),
            *intake.kit.outbox(again.json()["workflow_id"])]
    assert {m.to_email.lower() for m in sent if m.to_email} == {"alice@example.com"}
    assert customer.first_name == "Alice"


async def test_a_customer_known_only_by_an_unsubscribe_takes_their_first_address(
    intake: Intake,
):
    unsubscribed = await intake.post(
        "/v1/unsubscribes", {"shop_id": intake.shop_id, "customer_id": "c-early"}
    )
    assert unsubscribed.status_code == 200, unsubscribed.text
    bought = await intake.post("/v1/purchases", intake.purchase("U1", customer={
        "id": "c-early", "email": "early@example.com"}))
    assert bought.status_code == 202, bought.text


async def test_a_refund_id_names_one_refund(intake: Intake):
    for order in ("RA", "RB"):
        assert (await intake.post("/v1/purchases", intake.purchase(order))).status_code == 202
    refund = {"shop_id": intake.shop_id, "order_id": "RA", "amount": "10.00", "refund_id": "R1"}
    first = await intake.post("/v1/refunds", refund)
    assert first.status_code == 202, first.text
    assert _refunds(intake, "RA") == ([("R1", Decimal("10.00"), "")], Decimal("10.00"))
    assert first.json() == {"workflow_id": workflow_id_for(intake.shop_id, "RA"),
                            "refund_id": _refund_ids(intake, "RA")[0]}
    before = await intake.written()
    for other in ({"order_id": "RB"}, {"order_id": "RB", "amount": "5.00"}, {"amount": "5.00"}):
        assert_refusal(await intake.post("/v1/refunds", refund | other), 409, "refund_id")
    assert await intake.written() == before
    with intake.kit.sessions() as session:
        order_b = session.scalars(select(Purchase).where(
            Purchase.shop_id == intake.shop_id, Purchase.order_id == "RB")).one()
    assert order_b.refunded_amount == 0
    status = await intake.kit.client.get_workflow_handle(order_b.workflow_id).query(
        PurchaseLifecycle.status)
    assert status.stopped is None


async def test_one_refund_however_its_amount_is_written(intake: Intake):
    assert (await intake.post("/v1/purchases", intake.purchase("RW"))).status_code == 202
    refund = {"shop_id": intake.shop_id, "order_id": "RW", "reason": "late"}
    answers = [await intake.post("/v1/refunds", refund | {"amount": amount})
               for amount in ("10", "10.0", "10.00", "10.0000")]
    assert [a.status_code for a in answers] == [202, 200, 200, 200], answers[-1].text
    expected = {"workflow_id": workflow_id_for(intake.shop_id, "RW"),
                "refund_id": _refund_ids(intake, "RW")[0]}
    assert [a.json() for a in answers] == [expected] * 4
    [(_, amount, reason)], refunded = _refunds(intake, "RW")
    assert (amount, reason, refunded) == (Decimal("10.00"), "late", Decimal("10.00"))
    for written in ("1E+1", "1e1", "+10", "10.001", ".5", "١٠"):
        assert_refusal(await intake.post("/v1/refunds", refund | {"amount": written}), 422,
                       "amount")
    assert _rows(intake, Refund, shop_id=intake.shop_id, order_id="RW") == 1


@pytest.mark.parametrize("written", [
    "1e9", "1E+2", "-0", "4_9.00", "٤٩.٠٠", "+49", ".5", "49.", " 49.00", "0x31", "Infinity",
    "49.00001", "1000000001",
])
async def test_money_is_a_plain_decimal_string(intake: Intake, written: str):
    before = await intake.written()
    assert_refusal(await intake.post("/v1/purchases", intake.purchase(total=written)), 422,
                   "total")
    assert await intake.written() == before


async def test_money_has_at_most_the_currencys_minor_unit_and_is_kept_so(intake: Intake):
    item = {"sku": "TEA", "name": "Tea", "quantity": 2}
    for currency, price, total in (("JPY", "1000.5", "2001"), ("EUR", "10.005", "20.01")):
        event = intake.purchase(currency=currency, items=[item | {"unit_price": price}],
                                total=total)
        assert_refusal(await intake.post("/v1/purchases", event), 422, "items")
    jpy = intake.purchase("Y1", currency="JPY", items=[item | {"unit_price": "1000"}],
                          total="2000")
    kwd = intake.purchase("K1", currency="KWD", items=[item | {"unit_price": "1.5"}],
                          total="3.125", tax="0.125")
    eur = intake.purchase("E1", items=[item | {"unit_price": "24.5"}], total="49")
    for event in (jpy, kwd, eur):
        assert (await intake.post("/v1/purchases", event)).status_code == 202
    with intake.kit.sessions() as session:
        stored = {row.order_id: row.total for row in session.execute(
            select(Purchase.order_id, Purchase.total).where(Purchase.shop_id == intake.shop_id))}
        items = session.scalars(select(Purchase.items).where(
            Purchase.shop_id == intake.shop_id, Purchase.order_id == "E1")).one()
    assert (str(stored["E1"]), str(stored["K1"])) == ("49.00", "3.125")
    assert stored["Y1"] == 2000
    assert items[0]["unit_price"] == "24.50"


async def test_a_total_the_items_cannot_explain_is_refused(intake: Intake):
    cents = intake.purchase(total="4900")  # the items cost 49.00
    assert_refusal(await intake.post("/v1/purchases", cents), 422, "total")
    with_shipping = intake.purchase(total="53.90", shipping="4.90")
    assert (await intake.post("/v1/purchases", with_shipping)).status_code == 202
    discounted = intake.purchase(total="39.20")
    assert (await intake.post("/v1/purchases", discounted)).status_code == 202


@pytest.mark.parametrize(("where", "value"), [
    ("customer.first_name", "Ana\x00"), ("customer.first_name", "\x1b]8;;https://x.example\x07A"),
    ("customer.first_name", "Ana\u202egnp.exe"), ("items.0.name", "Kettle\x00"),
    ("items.0.name", "Kettle\x9b31m"), ("items.0.name", "Line\nbreak"),
])
async def test_control_characters_in_names_are_refused(intake: Intake, where: str, value: str):
    event = intake.purchase()
    if where.startswith("customer"):
        event["customer"] = event["customer"] | {"first_name": value}
    else:
        event["items"] = [event["items"][0] | {"name": value}]
    before = await intake.written()
    assert_refusal(await intake.post("/v1/purchases", event), 422, where)
    assert await intake.written() == before


async def test_a_refund_reason_may_hold_lines_but_no_other_controls(intake: Intake):
    assert (await intake.post("/v1/purchases", intake.purchase("RC"))).status_code == 202
    refund = {"shop_id": intake.shop_id, "order_id": "RC", "amount": "1.00"}
    for reason in ("damaged\x00", "ok\x1b[2J"):
        assert_refusal(await intake.post("/v1/refunds", refund | {"reason": reason}), 422,
                       "reason")
    assert _rows(intake, Refund, shop_id=intake.shop_id, order_id="RC") == 0
    lines = await intake.post("/v1/refunds", refund | {"reason": "damaged\nbox torn\ttoo"})
    assert lines.status_code == 202, lines.text
    assert lines.json() == {"workflow_id": workflow_id_for(intake.shop_id, "RC"),
                            "refund_id": _refund_ids(intake, "RC")[0]}
    [(_, amount, reason)], refunded = _refunds(intake, "RC")
    assert (amount, reason, refunded) == (
        Decimal("1.00"), "damaged\nbox torn\ttoo", Decimal("1.00"))


async def test_the_same_order_with_another_body_is_a_conflict(intake: Intake):
    event = intake.purchase("C1")
    assert (await intake.post("/v1/purchases", event)).status_code == 202
    assert (await intake.post("/v1/purchases", event)).status_code == 200
    before = await intake.written()
    for field, changed in (
        ("total", {"total": "39.00"}),
        ("customer.id", {"customer": event["customer"] | {"id": "someone-else"}}),
        ("items", {"items": [event["items"][0] | {"quantity": 2}], "total": "98.00"}),
        ("placed_at", {"placed_at": "2026-11-20T10:00:00+00:00"}),
    ):
        assert_refusal(await intake.post("/v1/purchases", event | changed), 409, field)
    assert await intake.written() == before
    # the same order and instant written in another zone is the same body
    moved = event | {"placed_at": event["placed_at"].replace("+00:00", "Z")}
    assert (await intake.post("/v1/purchases", moved)).status_code == 200


async def test_purchases_outside_a_sane_window_are_refused(intake: Intake):
    now = await intake.kit.now()
    window = timedelta(seconds=intake.kit.rules.day_seconds
                       * intake.kit.rules.attribution_window_days)
    before = await intake.written()
    for placed_at in ("1900-01-01T00:00:00Z", "8999-12-31T00:00:00Z",
                      (now + timedelta(days=2)).isoformat(),
                      (now - window - timedelta(hours=1)).isoformat()):
        answer = await intake.post("/v1/purchases", intake.purchase(placed_at=placed_at))
        assert_refusal(answer, 422, "placed_at")
    assert await intake.written() == before
    for placed_at in (now + timedelta(hours=20), now - window + timedelta(hours=1)):
        event = intake.purchase(placed_at=placed_at.isoformat())
        assert (await intake.post("/v1/purchases", event)).status_code == 202


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "../../etc/passwd"])
async def test_a_time_zone_is_a_place(intake: Intake, zone: str):
    event = intake.purchase()
    event["customer"] = event["customer"] | {"timezone": zone}
    assert_refusal(await intake.post("/v1/purchases", event), 422, "customer.timezone")


async def test_a_shop_id_longer_than_its_column_is_refused_by_name(intake: Intake):
    """Shop ids are stored in 64 characters: a longer one was a driver error on PostgreSQL."""
    long_shop = "s" * 65
    for path, body in (
        ("/v1/purchases", intake.purchase(shop_id=long_shop)),
        ("/v1/refunds", {"shop_id": long_shop, "order_id": "1", "amount": "1.00"}),
        ("/v1/unsubscribes", {"shop_id": long_shop, "customer_id": "c-1"}),
    ):
        assert_refusal(await intake.post(path, body), 422, "shop_id")
