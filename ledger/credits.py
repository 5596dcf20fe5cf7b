"""The credit ledger: pending → approved after the hold → reversed, or clawed back once paid.

Every write is keyed by the ledger's unique constraint (referrer + customer + milestone), so a
retried activity or a duplicate signal finds the existing entry instead of adding a second one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from database.models import Credit, Purchase

CLAWBACK_PREFIX = "clawback:"


def record(
    session: Session,
    *,
    purchase: Purchase,
    order_id: str,
    workflow_id: str,
    referrer_kind: str,
    referrer_code: str,
    amounts: dict[str, Decimal],
    hold: timedelta,
    now: datetime,
) -> list[Credit]:
    """Add each milestone's credit unless this referrer already earned it for this customer;
    returns them in the order given, found or added, in one query and one flush."""
    customer_id = purchase.customer.customer_id
    found = {
        credit.milestone: credit
        for credit in session.scalars(
            select(Credit).where(
                Credit.shop_id == purchase.shop_id,
                Credit.referrer_code == referrer_code,
                Credit.customer_id == customer_id,
                Credit.milestone.in_(list(amounts)),
            )
        )
    }
    for milestone, amount in amounts.items():
        if milestone not in found:
            found[milestone] = Credit(
                shop_id=purchase.shop_id,
                referrer_kind=referrer_kind,
                referrer_code=referrer_code,
                customer_id=customer_id,
                order_id=order_id,
                workflow_id=workflow_id,
                milestone=milestone,
                amount=amount,
                currency=purchase.currency,
                status="pending",
                approve_after=now + hold,
            )
            session.add(found[milestone])
    session.flush()
    return [found[milestone] for milestone in amounts]


def approve(session: Session, credit_ids: Iterable[int], now: datetime) -> int:
    """Approve credits whose hold has passed; reversed ones stay reversed."""
    approved = session.scalars(
        update(Credit)
        .where(
            Credit.id.in_(list(credit_ids)), Credit.status == "pending", Credit.approve_after <= now
        )
        .values(status="approved", approved_at=now)
        .returning(Credit.id)
    ).all()
    return len(approved)


def reverse_order(session: Session, shop_id: str, order_id: str, now: datetime) -> list[Credit]:
    """A refunded order takes back what it earned: pending credits are reversed in place,
    approved or paid ones get a negative clawback entry, each exactly once."""
    credits = session.scalars(
        select(Credit)
        .where(Credit.shop_id == shop_id, Credit.order_id == order_id)
        .where(Credit.reverses_credit_id.is_(None))
        .order_by(Credit.id)
        .with_for_update()
    ).all()
    changed: list[Credit] = []
    for credit in credits:
        if credit.status == "pending":
            credit.status = "reversed"
            credit.reversed_at = now
            changed.append(credit)
        elif credit.status in ("approved", "paid"):
            changed.append(_claw_back(session, credit, now))
    session.flush()
    return changed


def _claw_back(session: Session, credit: Credit, now: datetime) -> Credit:
    milestone = CLAWBACK_PREFIX + credit.milestone
    existing = session.scalar(
        select(Credit).where(
            Credit.shop_id == credit.shop_id,
            Credit.referrer_code == credit.referrer_code,
            Credit.customer_id == credit.customer_id,
            Credit.milestone == milestone,
        )
    )
    if existing is not None:
        return existing
    clawback = Credit(
        shop_id=credit.shop_id,
        referrer_kind=credit.referrer_kind,
        referrer_code=credit.referrer_code,
        customer_id=credit.customer_id,
        order_id=credit.order_id,
        workflow_id=credit.workflow_id,
        milestone=milestone,
        amount=-credit.amount,
        currency=credit.currency,
        status="approved",
        reverses_credit_id=credit.id,
        approve_after=now,
        approved_at=now,
    )
    session.add(clawback)
    return clawback
