"""Two refunds of one order at the same moment never refund more than the order, and each is
counted in the purchase's refunded amount: the second decides on what the first committed.
PostgreSQL keeps the second out with the purchase's row lock; SQLite has no row locks, and
pysqlite begins a transaction only at its first write, so there the refund's transaction begins
IMMEDIATE (as an email step's decision does)."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from database.models import Customer, Purchase, Refund
from database.session import make_engine, make_sessionmaker
from intake.errors import EventRejected
from intake.service import LifecycleService
from shop_events.schemas import RefundEvent
from workflows.rules import LifecycleRules


@pytest.fixture
def own_sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """An engine of this test's own, so the pause below reaches only its statements."""
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def an_order(sessions: sessionmaker[Session], total: str) -> str:
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    with sessions.begin() as session:
        customer = Customer(shop_id=shop, customer_id="c-1", email="ana@example.com",
                            email_normalized="ana@example.com", first_name="Ana")
        session.add(Purchase(
            shop_id=shop, order_id="1", customer=customer,
            placed_at=datetime(2026, 11, 20, tzinfo=UTC), total=Decimal(total), currency="EUR",
            workflow_id=f"purchase-{shop}-1",
            items=[{"sku": "KETTLE-1", "name": "Kettle", "quantity": 1, "unit_price": total}],
        ))
    return shop


def test_two_refunds_at_once_refund_no_more_than_the_order(own_sessions: sessionmaker[Session]):
    shop = an_order(own_sessions, "49.00")
    intake = LifecycleService(own_sessions, None, task_queue="-", email_task_queue="-",  # type: ignore[arg-type]
                              rules=LifecycleRules())
    # Each refund, having read the purchase (what is left to refund), waits for the other to
    # have read it too; a refund kept from reading by the other's lock breaks the barrier.
    barrier = threading.Barrier(2, timeout=3)

    def after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT shop_purchase.id"):
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()

    def refund(refund_id: str) -> str:
        try:
            intake._store_refund(RefundEvent(shop_id=shop, order_id="1",
                                             amount=Decimal("30.00"), refund_id=refund_id))
        except EventRejected as refused:
            return f"{refused.status} {refused.problems[0]['problem']}"
        return "stored"

    engine = own_sessions.kw["bind"]
    event.listen(engine, "after_cursor_execute", after)
    try:
        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(refund, ["r-1", "r-2"]))
    finally:
        event.remove(engine, "after_cursor_execute", after)

    assert outcomes == ["422 refund 30.00 exceeds the 19.00 left to refund on this order",
                        "stored"]
    assert barrier.broken  # they never both held "49.00 left"
    with own_sessions() as session:
        amounts = session.scalars(select(Refund.amount).where(Refund.shop_id == shop)).all()
        refunded = session.scalar(select(Purchase.refunded_amount).where(Purchase.shop_id == shop))
    assert (amounts, refunded) == ([Decimal("30.00")], Decimal("30.00"))
