"""Purchases as the intake would have stored them, written in bulk so seeding is not measured."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from database.models import Creator, Customer, Purchase
from intake.store import workflow_id_for

CREATOR_CODE = "BENCH10"
FIRST_TOTAL = Decimal("49.00")
REPEAT_TOTAL = Decimal("120.00")


def order_id(index: int) -> str:
    return f"o{index:06d}"


def add_creator(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        if session.query(Creator).filter_by(code=CREATOR_CODE).first() is None:
            session.add(Creator(code=CREATOR_CODE, name="Bench Creator",
                                email="creator@bench.example"))


def purchases(sessions: sessionmaker[Session], shop_id: str, count: int) -> list[str]:
    """One purchase per new customer, referred by the benchmark's creator; returns order ids."""
    now = datetime.now(UTC)
    orders = [order_id(i) for i in range(count)]
    with sessions.begin() as session:
        for order in orders:
            customer = Customer(
                shop_id=shop_id, customer_id=f"c-{order}", email=f"{order}@bench.example",
                email_normalized=f"{order}@bench.example", first_name="Ana", locale="en",
                timezone="Europe/Lisbon", marketing_consent=True,
            )
            session.add(customer)
            session.add(Purchase(
                shop_id=shop_id, order_id=order, customer=customer, placed_at=now,
                total=FIRST_TOTAL, currency="EUR",
                items=[{"sku": "KETTLE-1", "name": "Pour-over kettle", "quantity": 1,
                        "unit_price": str(FIRST_TOTAL)}],
                referral_code=CREATOR_CODE, workflow_id=workflow_id_for(shop_id, order),
            ))
    return orders


def place_now(sessions: sessionmaker[Session], shop_id: str, order: str) -> None:
    """Every step is due relative to `placed_at`: the purchase is placed as its lifecycle starts,
    as it is when the intake stores it."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.execute(
            update(Purchase).where(Purchase.shop_id == shop_id, Purchase.order_id == order)
            .values(placed_at=now, lifecycle_started_at=now)
        )
