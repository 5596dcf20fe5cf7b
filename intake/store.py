"""Storing a purchase before its lifecycle starts, in as few round trips as the databases allow:
a new customer's order is one transaction of two inserts (the customer's insert does nothing
when the customer is known, and only then are they looked up and refreshed), and only a repeated
order pays for a second look. This is the intake's hot path, so it runs prepared Core statements
on a connection (compiled once, cached), not the ORM's unit of work.

Nothing marks the start of a new customer's lifecycle here: its first step stamps
`lifecycle_started_at`, and until then a retried order simply asks Temporal to start it again
(the start is refused, and the retry answers with the same lifecycle).

A stored purchase is the truth a retry is held against: the same order with another body, a
customer id arriving with another person's address, or a lifecycle id taken by another
shop's order is refused with a 409 naming what conflicts, never stored over or answered as an
outage."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from activities.schedule import days
from database.models import Customer, Purchase
from database.session import engine_of
from database.upsert import InsertNew
from intake.errors import EventRejected
from ledger.referrals import normalize_email
from shop_events.schemas import PurchaseEvent
from workflows.rules import LifecycleRules

PERSONAL = ("email", "email_normalized", "first_name", "locale", "timezone", "marketing_consent")
FIND_CUSTOMER = select(
    Customer.id, Customer.erased_at, *(getattr(Customer, name) for name in PERSONAL)
).where(Customer.shop_id == bindparam("shop_id"), Customer.customer_id == bindparam("customer_id"))
# a new customer's row, or nothing when the customer is known (the unique shop + customer id)
ADD_NEW_CUSTOMER = InsertNew(Customer, [Customer.shop_id, Customer.customer_id], Customer.id)
ADD_PURCHASE = insert(Purchase)
FIND_PURCHASE = (
    select(
        Purchase.workflow_id, Purchase.lifecycle_started_at, Purchase.repeat_routed_at,
        Purchase.placed_at, Purchase.total, Purchase.currency, Purchase.items,
        Purchase.referral_code, Customer.customer_id, Customer.email_normalized,
        Customer.erased_at,
    )
    .join(Customer, Purchase.customer_pk == Customer.id)
    .where(Purchase.shop_id == bindparam("shop_id"), Purchase.order_id == bindparam("order_id"))
)
LIFECYCLE_TAKEN = select(Purchase.id).where(Purchase.workflow_id == bindparam("workflow_id"))

MARK_ROUTED = (
    update(Purchase)
    .where(Purchase.shop_id == bindparam("shop"), Purchase.order_id == bindparam("order"))
    .values(repeat_routed_at=bindparam("now"))
)


def workflow_id_for(shop_id: str, order_id: str) -> str:
    """The lifecycle id of a new purchase. Ids may hold `-`, so the shop's are written as `~`
    (which no id may hold): the first `-` after `purchase-` always ends the shop, and shop
    `acme-eu` order `1001` (`purchase-acme~eu-1001`) is no longer shop `acme` order
    `eu-1001` (`purchase-acme-eu-1001`). Shops without `-` keep the ids they had; every
    lifecycle is reached by the id stored with its purchase, never by one computed again."""
    return f"purchase-{shop_id.replace('-', '~')}-{order_id}"


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
    """Raises IntegrityError when a concurrent call stored the same customer first: retry.
    Raises EventRejected (409) when the order, its customer or its lifecycle id conflicts."""
    workflow_id = workflow_id_for(event.shop_id, event.order_id)
    engine = engine_of(sessions)
    try:
        with engine.begin() as connection:
            customer_pk, new_customer = _upsert_customer(connection, event)
            # a new customer has no earlier lifecycle to tell of this purchase
            routed_at = datetime.now(UTC) if new_customer else None
            connection.execute(ADD_PURCHASE, {
                "shop_id": event.shop_id,
                "order_id": event.order_id,
                "customer_pk": customer_pk,
                "placed_at": event.placed_at,
                "total": event.total,
                "currency": event.currency,
                "items": _items(event),
                "referral_code": event.referral.code if event.referral else None,
                "workflow_id": workflow_id,
                "window_closes_at": event.placed_at + days(rules, rules.attribution_window_days),
                "repeat_routed_at": routed_at,
            })
        return StoredPurchase(workflow_id, event.customer.id, False, routed_at is not None, True)
    except IntegrityError:
        with engine.connect() as connection:
            row = connection.execute(
                FIND_PURCHASE, {"shop_id": event.shop_id, "order_id": event.order_id}
            ).first()
            taken = row is None and connection.execute(
                LIFECYCLE_TAKEN, {"workflow_id": workflow_id}
            ).first() is not None
        if taken:
            raise EventRejected(
                409, "order_id",
                f"order {event.order_id}'s lifecycle id {workflow_id} is taken by an order "
                "stored before lifecycle ids were made unambiguous; send it under another "
                "order id or ask support",
            ) from None
        if row is None:
            raise
        if differences := conflicts(row, event):
            raise EventRejected.invalid([
                {"field": field, "problem": f"differs from order {event.order_id} as stored: "
                                            "a repeated order must carry its first body"}
                for field in differences
            ], status=409) from None
        return StoredPurchase(row.workflow_id, row.customer_id,
                              row.lifecycle_started_at is not None,
                              row.repeat_routed_at is not None)


def _items(event: PurchaseEvent) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json") for item in event.items]


def conflicts(stored: Any, event: PurchaseEvent) -> list[str]:
    """The fields in which a repeated order differs from the one stored. The customer's own
    fields (name, locale, consent) are theirs and may have changed since; an erased
    customer's are gone."""

    def items(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(i["sku"], i["name"], int(i["quantity"]), Decimal(str(i["unit_price"])))
                for i in rows]

    differs = {
        "placed_at": stored.placed_at != event.placed_at,
        "total": Decimal(stored.total) != event.total,
        "currency": stored.currency != event.currency,
        "items": items(stored.items) != items(_items(event)),
        "referral": stored.referral_code != (event.referral.code if event.referral else None),
    }
    if stored.erased_at is None:
        differs["customer.id"] = stored.customer_id != event.customer.id
    return [field for field, different in differs.items() if different]


def _upsert_customer(connection: Connection, event: PurchaseEvent) -> tuple[int, bool]:
    """The customer's row id, and whether this purchase created it. An erased customer's
    personal fields stay blank."""
    data = event.customer
    fields: dict[str, Any] = {
        "email": str(data.email), "email_normalized": normalize_email(str(data.email)),
        "first_name": data.first_name, "locale": data.locale, "timezone": data.timezone,
        "marketing_consent": data.marketing_consent,
    }
    key = {"shop_id": event.shop_id, "customer_id": data.id}
    added = connection.execute(ADD_NEW_CUSTOMER(connection), key | fields).first()
    if added is not None:
        return added.id, True
    row = connection.execute(FIND_CUSTOMER, key).one()
    if row.email_normalized not in (None, fields["email_normalized"]):
        # Another person's address under a known id (a guest checkout's shared id `0`, say):
        # their emails, code and consent must not become this customer's.
        raise EventRejected(
            409, "customer.id",
            f"customer {data.id} of this shop was first seen with another email address; a "
            "customer id must name one person (for guest checkouts send an id of their own)",
        )
    changed = {name: value for name, value in fields.items() if getattr(row, name) != value}
    if row.erased_at is None and changed:
        connection.execute(update(Customer).where(Customer.id == row.id).values(**changed))
    return row.id, False


def mark_routed(sessions: sessionmaker[Session], shop_id: str, order_id: str) -> None:
    """The customer's earlier lifecycles are told of this purchase: a retry does not tell them
    again."""
    with engine_of(sessions).begin() as connection:
        connection.execute(MARK_ROUTED, {"shop": shop_id, "order": order_id,
                                         "now": datetime.now(UTC)})
