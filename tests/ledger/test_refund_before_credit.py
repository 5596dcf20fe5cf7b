"""A repeat purchase refunded before its lifecycle credits it earns nothing that stays.

The repeat's signal can wait in the first lifecycle's inbox (a send waiting on SendGrid's
confirmation holds the loop) while the shop refunds the repeat: the refund's own reversal runs
first and finds no credit. Seen in the fault suite (a `repeat_then_refund_it` story whose
credits stayed approved). Run on both databases, through the real activity."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.purchases import PurchaseActivities
from cli.creators import add_creator
from database.models import Credit, Customer, Purchase
from workflows.contract import CreditMilestones
from workflows.rules import LifecycleRules

PLACED = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _shop_with_a_repeat(sessions: sessionmaker[Session], refunded: Decimal) -> tuple[str, str]:
    shop_id, code = f"shop-{uuid.uuid4().hex[:10]}", f"MAYA{uuid.uuid4().hex[:6].upper()}"
    add_creator(sessions, code, "Maya", f"maya-{code.lower()}@creators.example")
    with sessions.begin() as session:
        customer = Customer(shop_id=shop_id, customer_id="c-1", email="ana@example.com",
                            email_normalized="ana@example.com", marketing_consent=True)
        session.add(customer)
        for order, placed, refund in (("1", PLACED, Decimal("0")),
                                      ("2", PLACED + timedelta(days=3), refunded)):
            session.add(Purchase(
                shop_id=shop_id, order_id=order, customer=customer, placed_at=placed,
                total=Decimal("120.00"), currency="EUR", items=[], referral_code=code,
                attribution="creator", referrer_code=code,
                workflow_id=f"purchase-{shop_id}~{order}", refunded_amount=refund,
            ))
    return shop_id, code


def _credit_the_repeat(sessions: sessionmaker[Session], shop_id: str, code: str) -> None:
    activities = PurchaseActivities(sessions)
    request = CreditMilestones(
        shop_id=shop_id, order_id="1", workflow_id=f"purchase-{shop_id}~1",
        referrer_kind="creator", referrer_code=code, earned_by_order="2",
        milestones=["first_repeat_purchase", "spend:100"], rules=LifecycleRules(),
        now=PLACED + timedelta(days=4),
    )
    ActivityEnvironment().run(activities.credit_milestones, request)


def _ledger(sessions: sessionmaker[Session], shop_id: str) -> list[tuple[str, str, str]]:
    with sessions() as session:
        return [(c.milestone, c.status, c.order_id) for c in session.scalars(
            select(Credit).where(Credit.shop_id == shop_id).order_by(Credit.id))]


@pytest.mark.parametrize("refunded", [Decimal("120.00"), Decimal("10.00")], ids=["full", "part"])
def test_a_repeat_refunded_before_its_credit_is_credited_reversed(
    sessions: sessionmaker[Session], refunded: Decimal
) -> None:
    """Any refund of an order takes back what it earned (ledger.credits.reverse_order), so
    the order of refund and credit does not change the ledger."""
    shop_id, code = _shop_with_a_repeat(sessions, refunded)
    _credit_the_repeat(sessions, shop_id, code)
    assert _ledger(sessions, shop_id) == [
        ("first_repeat_purchase", "reversed", "2"), ("spend:100", "reversed", "2"),
    ]


def test_a_repeat_not_refunded_is_credited_pending(sessions: sessionmaker[Session]) -> None:
    shop_id, code = _shop_with_a_repeat(sessions, Decimal("0"))
    _credit_the_repeat(sessions, shop_id, code)
    _credit_the_repeat(sessions, shop_id, code)  # a retried activity finds its credits
    assert _ledger(sessions, shop_id) == [
        ("first_repeat_purchase", "pending", "2"), ("spend:100", "pending", "2"),
    ]
