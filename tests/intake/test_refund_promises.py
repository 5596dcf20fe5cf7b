"""Refund promises no other test would notice breaking (issue 16), over HTTP on the real intake:
a refund is one refund however often the shop sends it (its refund id is the key), and an
approved credit is clawed back once however many refunds its order gets. Rows are counted."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select

from database.models import Purchase, Refund
from tests.intake.conftest import Intake


async def _buy(intake: Intake, order_id: str, creator: str) -> str:
    placed_at = (await intake.kit.now()).isoformat()
    response = await intake.post("/v1/purchases", intake.purchase(
        order_id, placed_at=placed_at, referral={"code": creator}
    ))
    assert response.status_code == 202, response.text
    return str(response.json()["workflow_id"])


def _refund(intake: Intake, order_id: str, amount: str, refund_id: str, **fields: Any) -> dict:
    return {"shop_id": intake.shop_id, "order_id": order_id, "amount": amount,
            "reason": "damaged", "refund_id": refund_id} | fields


def _refunds(intake: Intake, order_id: str) -> tuple[list[tuple[str, Decimal]], Decimal]:
    """The order's refund rows (key, amount) and the amount its purchase counts as refunded."""
    with intake.kit.sessions() as session:
        rows = session.execute(
            select(Refund.refund_key, Refund.amount)
            .where(Refund.shop_id == intake.shop_id, Refund.order_id == order_id)
            .order_by(Refund.id)
        ).all()
        refunded = session.scalar(
            select(Purchase.refunded_amount)
            .where(Purchase.shop_id == intake.shop_id, Purchase.order_id == order_id)
        )
    assert refunded is not None
    return [(key, amount) for key, amount in rows], refunded


def _ledger(intake: Intake, creator: str) -> list[tuple[str, Decimal, str, str]]:
    return [(c.milestone, c.amount, c.status, c.order_id) for c in intake.kit.credits(creator)]


async def test_the_same_refund_sent_twice_is_one_refund_and_one_reversal(intake: Intake):
    creator = intake.kit.add_creator("MAYA")
    workflow_id = await _buy(intake, "rf-1001", creator)
    refund = _refund(intake, "rf-1001", "10.00", "shop-refund-1")

    first = await intake.post("/v1/refunds", refund)
    again = await intake.post("/v1/refunds", refund)
    # the shop's retry may word its reason differently: the refund id names the refund
    reworded = await intake.post("/v1/refunds", refund | {"reason": "damaged in transit"})
    await intake.kit.handle(workflow_id).result()

    assert (first.status_code, again.status_code, reworded.status_code) == (202, 200, 200)
    assert again.json() == reworded.json() == first.json()
    assert _refunds(intake, "rf-1001") == ([("shop-refund-1", Decimal("10.00"))], Decimal("10.00"))
    assert _ledger(intake, creator) == [("referral", Decimal("5.00"), "reversed", "rf-1001")]


async def test_two_refund_ids_with_one_amount_and_reason_are_two_refunds(intake: Intake):
    creator = intake.kit.add_creator("MAYA")
    workflow_id = await _buy(intake, "rf-2001", creator)
    for refund_id in ("shop-refund-a", "shop-refund-b"):
        response = await intake.post("/v1/refunds", _refund(intake, "rf-2001", "10.00", refund_id))
        assert response.status_code == 202, response.text  # 202 a new refund, 200 a repeat
    await intake.kit.handle(workflow_id).result()

    assert _refunds(intake, "rf-2001") == (
        [("shop-refund-a", Decimal("10.00")), ("shop-refund-b", Decimal("10.00"))],
        Decimal("20.00"),
    )
    assert _ledger(intake, creator) == [("referral", Decimal("5.00"), "reversed", "rf-2001")]


async def test_two_refunds_of_an_approved_order_claw_back_once(intake: Intake):
    """Two partial refunds while the lifecycle runs, a third after it closed: the approved
    referral credit gets one negative entry, and the entry itself is never clawed back."""
    creator = intake.kit.add_creator("MAYA")
    workflow_id = await _buy(intake, "rf-3001", creator)
    await intake.kit.skip(31)  # past the 30-day hold: the referral credit is approved
    assert _ledger(intake, creator) == [("referral", Decimal("5.00"), "approved", "rf-3001")]

    for refund_id, amount in (("part-1", "10.00"), ("part-2", "15.00")):
        response = await intake.post("/v1/refunds", _refund(intake, "rf-3001", amount, refund_id))
        assert response.status_code == 202, response.text
    summary = await intake.kit.handle(workflow_id).result()
    late = await intake.post("/v1/refunds", _refund(intake, "rf-3001", "5.00", "part-3"))
    assert late.status_code == 202, late.text

    assert summary.stage == "refunded"
    keys, refunded = _refunds(intake, "rf-3001")
    assert (len(keys), refunded) == (3, Decimal("30.00"))
    ledger = intake.kit.credits(creator)
    assert [(c.milestone, c.amount, c.status, c.order_id) for c in ledger] == [
        ("referral", Decimal("5.00"), "approved", "rf-3001"),
        ("clawback:referral", Decimal("-5.00"), "approved", "rf-3001"),
    ]
    assert ledger[1].reverses_credit_id == ledger[0].id
    assert sum(c.amount for c in ledger) == 0
