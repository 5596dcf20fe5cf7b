"""`loyalloop resubscribe`: support lifts what stops a customer's marketing email, a bounce
suppression (the mailbox works again) or an unsubscribe, never a spam report's: only the
customer's own resubscribe lifts that (intake/suppressions.py). The lift and its audit entry
commit together, so no lift goes unaudited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from database.models import AuditEntry, Customer
from database.session import lock_for_decision
from intake.suppressions import LiftRefused, lift
from support.audit import Actor
from support.errors import ActionRefused


@dataclass(frozen=True)
class Resubscribed:
    audit_id: int | None
    suppression_lifted: str | None
    unsubscribe_lifted: bool


def resubscribe(sessions: sessionmaker[Session], shop_id: str, customer_id: str,
                actor: Actor) -> Resubscribed:
    actor = actor.checked()
    now = datetime.now(UTC)
    with sessions.begin() as session:
        lock_for_decision(session.connection())
        customer = session.scalar(
            select(Customer).where(Customer.shop_id == shop_id,
                                   Customer.customer_id == customer_id).with_for_update()
        )
        if customer is None:
            raise ActionRefused("customer", f"no customer {customer_id} for shop {shop_id}")
        try:
            lifted = lift(session.connection(), shop_id, customer_id, now, customers_own=False)
        except LiftRefused as refused:
            raise ActionRefused("customer", f"{refused}; nothing was changed") from None
        unsubscribed = customer.unsubscribed_at is not None
        if lifted is None and not unsubscribed:
            return Resubscribed(None, None, False)
        customer.unsubscribed_at = None
        entry = AuditEntry(
            actor=actor.name, action="resubscribe", shop_id=shop_id, customer_id=customer_id,
            reason=actor.reason,
            detail={"suppression_lifted": lifted, "unsubscribe_lifted": unsubscribed},
        )
        session.add(entry)
        session.flush()
        return Resubscribed(entry.id, lifted, unsubscribed)
