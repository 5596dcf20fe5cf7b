"""A customer's own unsubscribe and resubscribe, from the link in their email.

The change and its audit entry are one transaction, and the change is a conditional update, so
a second click (or a mail client's one-click POST racing the page's button) finds nothing to
change and records nothing: one entry per real change, whatever repeats. Every send checks
`unsubscribed_at` in the transaction that decides it, so the effect is at the next send of every
lifecycle; the signals afterwards only let each running lifecycle show it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from database.models import AuditEntry, Customer, EmailSuppression, Purchase
from intake.suppressions import lift
from workflows.lifecycle import PurchaseLifecycle

ACTOR = "customer"  # the audit's actor for what a customer did themselves
log = logging.getLogger("loyalloop.intake")


@dataclass(frozen=True)
class Change:
    changed: bool
    workflow_ids: list[str]


def is_unsubscribed(sessions: sessionmaker[Session], shop_id: str, customer_id: str) -> bool:
    """Whether marketing email to them has stopped: their unsubscribe, or a suppression from
    SendGrid's events (a spam report, a bounce), which only their resubscribe may lift, so the
    page must offer it."""
    with sessions() as session:
        at = session.scalar(select(Customer.unsubscribed_at).where(
            Customer.shop_id == shop_id, Customer.customer_id == customer_id))
        suppressed = session.scalar(select(EmailSuppression.reason).where(
            EmailSuppression.shop_id == shop_id, EmailSuppression.customer_id == customer_id))
    return at is not None or suppressed is not None


def unsubscribe(
    sessions: sessionmaker[Session], shop_id: str, customer_id: str, how: str
) -> Change:
    """`how` says which door the customer used (one-click POST, the page's button)."""
    with sessions.begin() as session:
        change = mark_unsubscribed(session, shop_id, customer_id)
        if change.changed:
            _audit(session, "unsubscribe", shop_id, customer_id, how)
        return change


def mark_unsubscribed(session: Session, shop_id: str, customer_id: str) -> Change:
    """The one write of every unsubscribe (the customer's link, the shop's API, support), and
    the lifecycles to tell: a conditional update, so a repeat changes nothing."""
    pk = _customer_pk(session, shop_id, customer_id, remember=True)
    done = session.execute(
        update(Customer).where(Customer.id == pk, Customer.unsubscribed_at.is_(None))
        .values(unsubscribed_at=datetime.now(UTC))
    ).rowcount
    return Change(bool(done), _workflow_ids(session, pk))


def resubscribe(sessions: sessionmaker[Session], shop_id: str, customer_id: str) -> Change:
    with sessions.begin() as session:
        pk = _customer_pk(session, shop_id, customer_id, remember=False)
        if pk is None:
            return Change(False, [])
        done = session.execute(
            update(Customer).where(Customer.id == pk, Customer.unsubscribed_at.is_not(None))
            .values(unsubscribed_at=None)
        ).rowcount
        # The customer's own word lifts a spam report's suppression too; support's cannot.
        lifted = lift(session.connection(), shop_id, customer_id, datetime.now(UTC),
                      customers_own=True)
        if done or lifted:
            _audit(session, "resubscribe", shop_id, customer_id, "the unsubscribe page",
                   lifted=lifted)
        return Change(bool(done or lifted), [])


async def tell_lifecycles(client: Client, workflow_ids: list[str]) -> None:
    """Best effort: the unsubscribe already holds in the database, where sends check it."""
    for workflow_id in workflow_ids:
        try:
            await client.get_workflow_handle(workflow_id).signal(PurchaseLifecycle.unsubscribe)
        except (RPCError, RuntimeError) as error:
            log.info("unsubscribe of %s not signalled: %s", workflow_id, type(error).__name__)


def _customer_pk(
    session: Session, shop_id: str, customer_id: str, *, remember: bool
) -> int | None:
    """An unknown customer (a signed link names one, so this is rare: a purchase not yet
    stored) is remembered unsubscribed for their first purchase, as the shop's API does."""
    pk = session.scalar(select(Customer.id).where(
        Customer.shop_id == shop_id, Customer.customer_id == customer_id))
    if pk is None and remember:
        customer = Customer(shop_id=shop_id, customer_id=customer_id)
        session.add(customer)
        session.flush()
        pk = customer.id
    return pk


def _audit(session: Session, action: str, shop_id: str, customer_id: str, how: str,
           lifted: str | None = None) -> None:
    detail: dict[str, str] = {"via": how}
    if lifted:
        detail["suppression_lifted"] = lifted
    session.add(AuditEntry(actor=ACTOR, action=action, shop_id=shop_id, customer_id=customer_id,
                           reason=f"the customer's own {action}, by {how}", detail=detail))


def _workflow_ids(session: Session, customer_pk: int | None) -> list[str]:
    return list(session.scalars(
        select(Purchase.workflow_id).where(Purchase.customer_pk == customer_pk)))
