"""A refund arriving while an email step decides: the email goes out only if its claim was
committed before the refund was (it was on its way), and every step decided after the refund
skips it. The decision holds the customer's row from its first read to its claim; the refund
must take that row too, or it commits in between and the email the decision read as "not
refunded" goes out after the refund (the fault verdict's check-then-send race)."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.emails import LOCKED_PURCHASE, EmailActivities, EmailIdentity
from database.models import Customer, Purchase, Refund
from intake.service import LifecycleService
from messages.render import TemplateRenderer
from messages.senders import SendGridSender
from shop_events.schemas import RefundEvent
from tests.messages.test_senders import FakeSendGrid, fake_sendgrid  # noqa: F401
from workflows.contract import SendStep, StepResult
from workflows.rules import LifecycleRules

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
# How long the paused decision waits for the refund to finish: a refund that takes the
# customer's row waits for the decision instead, and this runs out.
REFUND_GRACE_S = 2.0


def a_purchase(sessions: sessionmaker[Session]) -> str:
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    with sessions.begin() as session:
        customer = Customer(
            shop_id=shop, customer_id="c-1", email="ana@example.com",
            email_normalized="ana@example.com", first_name="Ana", locale="en",
            timezone="UTC", marketing_consent=True,
            referral_code=f"R-{uuid.uuid4().hex[:8].upper()}",
        )
        session.add(Purchase(
            shop_id=shop, order_id="1", customer=customer,
            placed_at=datetime(2026, 11, 20, tzinfo=UTC), total=Decimal("49.00"),
            currency="EUR", workflow_id=f"purchase-{shop}-1",
            items=[{"sku": "KETTLE-1", "name": "Kettle", "quantity": 1, "unit_price": "49.00"}],
        ))
    return shop


class _RefundDuringDecision:
    """A connection that, once the decision has read the purchase (its refunded amount) and
    taken the customer's row, lets the refund run and waits for it to finish, or for
    REFUND_GRACE_S if the refund is made to wait for this decision."""

    def __init__(self, connection: Connection, test: DecidingWhileRefunded) -> None:
        self._connection = connection
        self._test = test

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        result = self._connection.execute(statement, *args, **kwargs)
        if statement is LOCKED_PURCHASE:
            self._test.decision_read.set()
            finished = self._test.refund_finished.wait(REFUND_GRACE_S)
            self._test.refunded_while_deciding = finished
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class DecidingWhileRefunded(EmailActivities):
    decision_read: threading.Event
    refund_finished: threading.Event
    refunded_while_deciding: bool | None = None

    def _claim(self, connection: Connection, req: SendStep, now: datetime):  # type: ignore[no-untyped-def]
        return super()._claim(
            _RefundDuringDecision(connection, self), req, now  # type: ignore[arg-type]
        )


def send_step(emails: EmailActivities, shop: str, step: str) -> tuple[str, str | None]:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, current_attempt_scheduled_time=datetime.now(UTC))
    request = SendStep(shop_id=shop, order_id="1", workflow_id=f"purchase-{shop}-1", step=step,
                       now=datetime.now(UTC))
    result: StepResult = env.run(emails.send_step, request)
    return result.status, result.reason


def test_a_refund_during_a_send_decision_waits_for_its_claim(
    sessions: sessionmaker[Session],
    fake_sendgrid: FakeSendGrid,  # noqa: F811
) -> None:
    shop = a_purchase(sessions)
    emails = DecidingWhileRefunded(
        sessions, TemplateRenderer(TEMPLATES), SendGridSender("SG.test", host=fake_sendgrid.url),
        EmailIdentity("hello@shop.example", "https://shop.example", "secret"),
    )
    emails.decision_read, emails.refund_finished = threading.Event(), threading.Event()
    # The refund as the intake stores it (its signal to the lifecycle comes after the commit).
    intake = LifecycleService(sessions, None, task_queue="-", email_task_queue="-",  # type: ignore[arg-type]
                              rules=LifecycleRules())
    refund = RefundEvent(shop_id=shop, order_id="1", amount=Decimal("10.00"), refund_id="r-1")

    def refund_once_deciding() -> Any:
        assert emails.decision_read.wait(10), "the send never read the purchase"
        try:
            return intake._store_refund(refund)
        finally:
            emails.refund_finished.set()

    with ThreadPoolExecutor(2) as pool:
        sending = pool.submit(send_step, emails, shop, "day_1")
        refunding = pool.submit(refund_once_deciding)
        sent, stored = sending.result(timeout=60), refunding.result(timeout=60)

    # Had the refund committed while the decision held "not refunded", day_1 would have gone
    # out after the refund. It waited on the customer's row: day_1 was claimed (on its way)
    # before the refund committed, and the refund is stored once the claim is.
    assert emails.refunded_while_deciding is False, "the refund committed inside the decision"
    assert sent == ("sent", None) and len(fake_sendgrid.received) == 1
    assert (stored.created, stored.amount) == (True, Decimal("10.00"))
    with sessions() as session:
        refunds = session.scalars(select(Refund.amount).where(Refund.shop_id == shop)).all()
        refunded = session.scalar(select(Purchase.refunded_amount).where(
            Purchase.shop_id == shop))
    assert (refunds, refunded) == ([Decimal("10.00")], Decimal("10.00"))

    # Every step decided after the refund sees it.
    assert send_step(emails, shop, "day_7") == ("skipped", "order_refunded")
    assert len(fake_sendgrid.received) == 1
