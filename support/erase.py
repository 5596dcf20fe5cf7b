"""Erasing a customer: their personal data leaves the database in one transaction, their
emails stop, and the ledger keeps its amounts under an anonymous id.

The shop's customer id is replaced everywhere in the database (customer, email record, ledger,
audit) by a random `anon-…` id, so nothing here links the ledger back to the person, while a
lifecycle still in flight keeps working: it holds only shop and order ids, its sends now skip as
`customer_erased`, and its later credits land under the same anonymous id, so the ledger's
unique keys still hold. Temporal keeps the old `CustomerId` search attribute until the
lifecycle's history passes its retention (ids only; no email or name is ever there).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from database.models import AuditEntry, Credit, Customer, EmailSend, OutboxMessage
from support.audit import Actor
from support.errors import ActionRefused


@dataclass(frozen=True)
class Erased:
    anonymous_id: str
    audit_id: int
    emails: int
    outbox_messages: int
    credits: int


def anonymous_id() -> str:
    return f"anon-{secrets.token_hex(10)}"


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
        anon = anonymous_id()
        customer.customer_id = anon
        customer.email = customer.email_normalized = customer.first_name = None
        customer.marketing_consent = False
        customer.unsubscribed_at = customer.unsubscribed_at or now
        customer.erased_at = now
        # Re-keying the email rows first waits for a send committing right now, so the outbox
        # statement after it sees that send's copy too.
        emails = _rekey(session, EmailSend, shop_id, customer_id, anon, subject=None)
        outbox = _blank_outbox(session, shop_id, anon)
        ledger = _rekey(session, Credit, shop_id, customer_id, anon)
        _rekey(session, AuditEntry, shop_id, customer_id, anon)
        entry = AuditEntry(
            actor=actor.name, action="erase_customer", shop_id=shop_id, customer_id=anon,
            reason=actor.reason, action_key=f"erase:{shop_id}:{anon}",
            detail={"emails": emails, "outbox_messages": outbox, "credits": ledger},
        )
        session.add(entry)
        session.flush()
        return Erased(anon, entry.id, emails, outbox, ledger)


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
