"""Storing a purchase before its lifecycle starts, in as few round trips as the databases allow:
a new order is one transaction (customer looked up, inserted or refreshed; purchase inserted),
and only a repeated order pays for a second look. Core statements, not the ORM's unit of work:
this is the intake's hot path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from activities.schedule import days
from database.models import Customer, Purchase
from intake.schemas import PurchaseEvent
from ledger.referrals import normalize_email
from workflows.rules import LifecycleRules


def workflow_id_for(shop_id: str, order_id: str) -> str:
    return f"purchase-{shop_id}-{order_id}"


@dataclass(frozen=True)
class StoredPurchase:
    workflow_id: str
    customer_id: str
    started: bool
    routed: bool
    new: bool = False


def store_purchase(
    sessions: sessionmaker[Session], event: PurchaseEvent, rules: LifecycleRules
) -> StoredPurchase:
    """Raises IntegrityError when a concurrent call stored the same customer first: retry."""
    workflow_id = workflow_id_for(event.shop_id, event.order_id)
    try:
        with sessions.begin() as session:
            customer_pk, new_customer = _upsert_customer(session, event)
            # a new customer has no earlier lifecycle to tell of this purchase
            routed_at = datetime.now(UTC) if new_customer else None
            session.execute(insert(Purchase).values(
                shop_id=event.shop_id,
                order_id=event.order_id,
                customer_pk=customer_pk,
                placed_at=event.placed_at,
                total=event.total,
                currency=event.currency,
                items=[item.model_dump(mode="json") for item in event.items],
                referral_code=event.referral.code if event.referral else None,
                workflow_id=workflow_id,
                window_closes_at=event.placed_at + days(rules, rules.attribution_window_days),
                repeat_routed_at=routed_at,
            ))
        return StoredPurchase(workflow_id, event.customer.id, False, routed_at is not None, True)
    except IntegrityError:
        existing = _existing(sessions, event.shop_id, event.order_id)
        if existing is None:
            raise
        return existing


def _existing(
    sessions: sessionmaker[Session], shop_id: str, order_id: str
) -> StoredPurchase | None:
    with sessions() as session:
        row = session.execute(
            select(Purchase.lifecycle_started_at, Purchase.repeat_routed_at, Customer.customer_id)
            .join(Customer, Purchase.customer_pk == Customer.id)
            .where(Purchase.shop_id == shop_id, Purchase.order_id == order_id)
        ).first()
    if row is None:
        return None
    return StoredPurchase(workflow_id_for(shop_id, order_id), row.customer_id,
                          row.lifecycle_started_at is not None, row.repeat_routed_at is not None)


def _upsert_customer(session: Session, event: PurchaseEvent) -> tuple[int, bool]:
    """The customer's row id, and whether this purchase created it. An erased customer's
    personal fields stay blank."""
    data = event.customer
    fields = {
        "email": str(data.email), "email_normalized": normalize_email(str(data.email)),
        "first_name": data.first_name, "locale": data.locale, "timezone": data.timezone,
        "marketing_consent": data.marketing_consent,
    }
    row = session.execute(
        select(Customer.id, Customer.erased_at, *(getattr(Customer, name) for name in fields))
        .where(Customer.shop_id == event.shop_id, Customer.customer_id == data.id)
    ).first()
    if row is None:
        customer_pk = session.execute(
            insert(Customer)
            .values(shop_id=event.shop_id, customer_id=data.id, **fields)
            .returning(Customer.id)
        ).scalar_one()
        return customer_pk, True
    changed = {name: value for name, value in fields.items() if getattr(row, name) != value}
    if row.erased_at is None and changed:
        session.execute(update(Customer).where(Customer.id == row.id).values(**changed))
    return row.id, False


def mark_done(
    sessions: sessionmaker[Session], shop_id: str, order_id: str, stored: StoredPurchase
) -> None:
    """One UPDATE records that the lifecycle is started and earlier lifecycles are told."""
    now = datetime.now(UTC)
    done = {"lifecycle_started_at": now} if not stored.started else {}
    if not stored.routed:
        done["repeat_routed_at"] = now
    with sessions.begin() as session:
        session.execute(
            update(Purchase)
            .where(Purchase.shop_id == shop_id, Purchase.order_id == order_id)
            .values(**done)
            .execution_options(synchronize_session=False)
        )
