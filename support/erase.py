"""Erasing a customer: their personal data leaves the database in one transaction, their
emails stop, and the ledger keeps its amounts under an anonymous id.

The shop's customer id is replaced everywhere in the database (customer, email record, ledger,
audit) by a random `anon-…` id, so nothing here links the ledger back to the person, while a
lifecycle still in flight keeps working: it holds only shop and order ids, its sends now skip as
`customer_erased`, and its later credits land under the same anonymous id, so the ledger's
unique keys still hold. Text that may quote the person is cleared too: subjects, bodies and
send errors of their emails; audit keys, reasons and details, refund reasons and item names of
their orders lose the id, the address and the name. Temporal keeps the old `CustomerId` search
attribute until the lifecycle's history passes its retention (ids only; no email or name).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from database.models import (
    AuditEntry,
    Credit,
    Customer,
    EmailEvent,
    EmailSend,
    EmailSuppression,
    OutboxMessage,
    Purchase,
    Refund,
)
from support import audit
from support.audit import Actor
from support.errors import ActionRefused

ERASED = "[erased]"
ERASED_ERROR = "(erased with the customer's data)"


@dataclass(frozen=True)
class Erased:
    anonymous_id: str
    audit_id: int
    emails: int
    outbox_messages: int
    credits: int


def anonymous_id() -> str:
    return f"anon-{secrets.token_hex(10)}"


class Scrubber:
    """Removes the person's id, addresses and name from free text, in any case, where each
    stands as a word (`c-42` is not removed from `c-420`; a guest id `0` not from `10.00`)."""

    def __init__(self, *values: str | None) -> None:
        words = sorted({v.strip() for v in values if v and v.strip()}, key=len, reverse=True)
        alternatives = "|".join(re.escape(word) for word in words)
        self.pattern = (
            re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE)
            if words else None
        )

    def mentions(self, text: str) -> bool:
        return self.pattern is not None and self.pattern.search(text) is not None

    def text(self, text: str) -> str:
        return self.pattern.sub(ERASED, text) if self.pattern else text

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        return value


def erase_customer(
    sessions: sessionmaker[Session], shop_id: str, customer_id: str, actor: Actor,
    now: datetime | None = None,
) -> Erased:
    actor = actor.checked()
    now = now or datetime.now(UTC)
    with sessions.begin() as session:
        customer = session.scalar(
            select(Customer)
            .where(Customer.shop_id == shop_id, Customer.customer_id == customer_id)
            .with_for_update()
        )
        if customer is None:
            raise ActionRefused(
                "customer", f"no customer {customer_id} for shop {shop_id} (never seen, or erased)"
            )
        scrub = Scrubber(customer_id, customer.email, customer.email_normalized,
                         customer.first_name)
        anon = anonymous_id()
        customer.customer_id = anon
        customer.email = customer.email_normalized = customer.first_name = None
        customer.marketing_consent = False
        customer.unsubscribed_at = customer.unsubscribed_at or now
        customer.erased_at = now
        # Re-keying the email rows first waits for a send committing right now, so the outbox
        # statement after it sees that send's copy too.
        emails = _rekey(session, EmailSend, shop_id, customer_id, anon, subject=None)
        session.execute(
            update(EmailSend)
            .where(EmailSend.shop_id == shop_id, EmailSend.customer_id == anon,
                   EmailSend.last_error.is_not(None))
            .values(last_error=ERASED_ERROR)
            .execution_options(synchronize_session=False)
        )
        outbox = _blank_outbox(session, shop_id, anon)
        ledger = _rekey(session, Credit, shop_id, customer_id, anon)
        _rekey(session, AuditEntry, shop_id, customer_id, anon)
        for delivery_record in (EmailEvent, EmailSuppression):  # SendGrid's events about them
            _rekey(session, delivery_record, shop_id, customer_id, anon)
        orders = _scrub_orders(session, customer, scrub)
        _scrub_audit(session, shop_id, anon, orders, scrub)
        entry = AuditEntry(
            actor=actor.name, action="erase_customer", shop_id=shop_id, customer_id=anon,
            reason=scrub.text(actor.reason),
            action_key=audit.action_key("erase", shop_id, anon).value,
            detail={"emails": emails, "outbox_messages": outbox, "credits": ledger},
        )
        session.add(entry)
        session.flush()
        return Erased(anon, entry.id, emails, outbox, ledger)


def _scrub_orders(session: Session, customer: Customer, scrub: Scrubber) -> list[str]:
    """Item names (an engraving, a gift note) and refund reasons of the customer's orders."""
    purchases = session.scalars(select(Purchase).where(Purchase.customer_pk == customer.id)).all()
    for purchase in purchases:
        purchase.items = scrub.json(purchase.items)
    orders = [p.order_id for p in purchases]
    if orders:
        for refund in session.scalars(select(Refund).where(
            Refund.shop_id == customer.shop_id, Refund.order_id.in_(orders)
        )):
            refund.reason = scrub.text(refund.reason)
            refund.refund_key = scrub.text(refund.refund_key)
    return orders


def _scrub_audit(
    session: Session, shop_id: str, anon: str, orders: list[str], scrub: Scrubber
) -> None:
    """The customer's and their orders' entries keep who, when and what, without the person.
    A key that names them, or is a hash that might, becomes `erased|<entry id>`: nothing
    looks such an entry up again (the customer id is new to us if it ever comes back)."""
    linked = [AuditEntry.customer_id == anon]
    if orders:
        linked.append(AuditEntry.order_id.in_(orders))
    for entry in session.scalars(
        select(AuditEntry).where(AuditEntry.shop_id == shop_id, or_(*linked))
    ):
        entry.reason = scrub.text(entry.reason)
        entry.detail = scrub.json(entry.detail)
        key = entry.action_key
        if key is not None and (scrub.mentions(key) or "#" in key):
            entry.action_key = audit.action_key("erased", str(entry.id)).value


def _blank_outbox(session: Session, shop_id: str, customer_id: str) -> int:
    sends = select(EmailSend.id).where(
        EmailSend.shop_id == shop_id, EmailSend.customer_id == customer_id
    )
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.email_send_id.in_(sends))
        .values(to_email=None, html=None, text=None, subject="")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _rekey(session: Session, model, shop_id: str, customer_id: str, anon: str, **blank) -> int:  # type: ignore[no-untyped-def]
    result = session.execute(
        update(model)
        .where(model.shop_id == shop_id, model.customer_id == customer_id)
        .values(customer_id=anon, **blank)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
