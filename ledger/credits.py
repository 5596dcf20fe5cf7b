"""The credit ledger: pending → approved after the hold → reversed, or clawed back once paid.

Every write is keyed by the ledger's unique constraint (referrer + customer + milestone), so a
retried activity or a duplicate signal finds the existing entry instead of adding a second one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from database.models import Credit
from database.session import AnyRow
from database.upsert import InsertNew

CLAWBACK_PREFIX = "clawback:"


class CreditStatus(StrEnum):
    """A credit's place in the ledger (`credit_ledger.status`)."""

    PENDING = "pending"  # in its hold
    APPROVED = "approved"  # payable
    REVERSED = "reversed"  # refunded while pending
    PAID = "paid"  # in a payout batch


ADD_CREDIT = InsertNew(
    Credit,
    [Credit.shop_id, Credit.referrer_code, Credit.customer_id, Credit.milestone],
    Credit.id, Credit.milestone, Credit.approve_after,
)
EARNED = select(Credit.id, Credit.milestone, Credit.approve_after).where(
    Credit.shop_id == bindparam("shop_id"),
    Credit.referrer_code == bindparam("referrer_code"),
    Credit.customer_id == bindparam("customer_id"),
    Credit.milestone.in_(bindparam("milestones", expanding=True)),
)
APPROVE = (
    update(Credit)
    .where(
        Credit.id.in_(bindparam("ids", expanding=True)),
        Credit.status == CreditStatus.PENDING,
        Credit.approve_after <= bindparam("now"),
    )
    .values(status=CreditStatus.APPROVED, approved_at=bindparam("now"))
)


@dataclass(frozen=True)
class Referrer:
    kind: str
    code: str


def record(
    connection: Connection,
    *,
    shop_id: str,
    customer_id: str,
    order_id: str,
    workflow_id: str,
    referrer: Referrer,
    amounts: dict[str, Decimal],
    currency: str,
    hold: timedelta,
    now: datetime,
) -> list[AnyRow]:
    """Add each milestone's credit unless this referrer already earned it for this customer;
    returns them (id, milestone, approve_after) in the order given, found or added: one
    statement, and a second only for milestones credited before (a retried activity)."""
    key = {"shop_id": shop_id, "referrer_code": referrer.code, "customer_id": customer_id}
    rows = [
        key | {
            "referrer_kind": referrer.kind,
            "order_id": order_id,
            "workflow_id": workflow_id,
            "milestone": milestone,
            "amount": amount,
            "currency": currency,
            "status": CreditStatus.PENDING,
            "approve_after": now + hold,
        }
        for milestone, amount in amounts.items()
    ]
    found = {row.milestone: row for row in connection.execute(ADD_CREDIT(connection), rows)}
    if before := [milestone for milestone in amounts if milestone not in found]:
        found |= {
            row.milestone: row
            for row in connection.execute(EARNED, key | {"milestones": before})
        }
    return [found[milestone] for milestone in amounts]


def approve(connection: Connection, credit_ids: Iterable[int], now: datetime) -> int:
    """Approve credits whose hold has passed; reversed ones stay reversed."""
    return connection.execute(APPROVE, {"ids": list(credit_ids), "now": now}).rowcount


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
        if credit.status == CreditStatus.PENDING:
            credit.status = CreditStatus.REVERSED
            credit.reversed_at = now
            changed.append(credit)
        elif credit.status in (CreditStatus.APPROVED, CreditStatus.PAID):
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
        status=CreditStatus.APPROVED,
        reverses_credit_id=credit.id,
        approve_after=now,
        approved_at=now,
    )
    session.add(clawback)
    return clawback
