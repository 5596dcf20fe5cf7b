"""A once-per-customer step (the referral prompt) decided by two lifecycles at the same moment
goes out once: the second decides while holding the customer's row, sees the first on its way to
SendGrid, and waits for it to settle; if the first fails, the second sends it."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.emails import STEP_ROWS, EmailActivities, EmailIdentity
from database.models import Customer, Purchase
from messages.render import TemplateRenderer
from messages.senders import SendGridSender
from tests.messages.test_senders import FakeSendGrid, Reply, fake_sendgrid  # noqa: F401
from workflows.contract import SendStep, StepResult

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def two_purchases(sessions: sessionmaker[Session]) -> tuple[str, list[str]]:
    shop = f"shop-{uuid.uuid4().hex[:8]}"
    with sessions.begin() as session:
        customer = Customer(
            shop_id=shop,
            customer_id="c-1",
            email="ana@example.com",
            email_normalized="ana@example.com",
            first_name="Ana",
            locale="en",
            timezone="UTC",
            marketing_consent=True,
            referral_code=f"R-{uuid.uuid4().hex[:8].upper()}",
        )
        for order in ("1", "2"):
            session.add(
                Purchase(
                    shop_id=shop,
                    order_id=order,
                    customer=customer,
                    placed_at=datetime(2026, 11, 20, tzinfo=UTC),
                    total=Decimal("10"),
                    currency="EUR",
                    workflow_id=f"purchase-{shop}-{order}",
                    items=[
                        {"sku": f"SKU-{order}", "name": "Mug", "quantity": 1, "unit_price": "10"}
                    ],
                )
            )
    return shop, ["1", "2"]


def prompt_sender(  # type: ignore[no-untyped-def]
    sessions: sessionmaker[Session],
    provider: FakeSendGrid,
    shop: str,
    activities: type[EmailActivities] = EmailActivities,
):
    """Sends one order's referral prompt as its activity would, attempt time now."""
    emails = activities(
        sessions,
        TemplateRenderer(TEMPLATES),
        SendGridSender("SG.test", host=provider.url),
        EmailIdentity("hello@shop.example", "https://shop.example", "secret"),
    )

    def send(order: str) -> tuple[str, str | None]:
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, current_attempt_scheduled_time=datetime.now(UTC))
        request = SendStep(
            shop_id=shop,
            order_id=order,
            workflow_id=f"purchase-{shop}-{order}",
            step="referral_prompt",
            now=datetime.now(UTC),
            once_per="customer",
        )
        result: StepResult = env.run(emails.send_step, request)
        return result.status, result.reason

    return send


def with_sendgrid(pool: ThreadPoolExecutor, provider: FakeSendGrid, send, order: str):  # type: ignore[no-untyped-def]
    """Start `order`'s send and return once its request has reached SendGrid."""
    started: Future[tuple[str, str | None]] = pool.submit(send, order)
    deadline = time.monotonic() + 10
    while not provider.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert provider.received, started.result(timeout=1)
    return started


def waits_for_the_other(send, order: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ApplicationError) as waiting:
        send(order)
    assert waiting.value.type == "ClaimUnconfirmed"


def test_two_lifecycles_send_the_referral_prompt_once(
    sessions: sessionmaker[Session],
    fake_sendgrid: FakeSendGrid,  # noqa: F811
) -> None:
    # The first send is still out when the second lifecycle decides.
    fake_sendgrid.reply = Reply(202, delay_s=1.0)
    shop, (first, second) = two_purchases(sessions)
    send = prompt_sender(sessions, fake_sendgrid, shop)

    with ThreadPoolExecutor(1) as pool:
        out = with_sendgrid(pool, fake_sendgrid, send, first)
        waits_for_the_other(send, second)  # its activity retries later
        assert out.result(timeout=30) == ("sent", None)

    assert send(second) == ("skipped", "already_sent_to_customer")
    assert len(fake_sendgrid.received) == 1


def test_a_prompt_whose_send_fails_goes_out_from_the_other_lifecycle(
    sessions: sessionmaker[Session],
    fake_sendgrid: FakeSendGrid,  # noqa: F811
) -> None:
    # The first lifecycle's send fails while the second waits on it: the customer still gets
    # the prompt once, from whichever lifecycle decides next.
    fake_sendgrid.reply = Reply(503, delay_s=1.0)
    shop, (first, second) = two_purchases(sessions)
    send = prompt_sender(sessions, fake_sendgrid, shop)

    with ThreadPoolExecutor(1) as pool:
        out = with_sendgrid(pool, fake_sendgrid, send, first)
        waits_for_the_other(send, second)
        with pytest.raises(ApplicationError) as failed:
            out.result(timeout=30)
        assert failed.value.type == "ProviderUnavailable"

    fake_sendgrid.reply = Reply(202)
    assert send(second) == ("sent", None)
    assert send(first) == ("skipped", "already_sent_to_customer")
    assert len(fake_sendgrid.received) == 2  # the 503 and the one that went out


class _PausedAfterReading:
    """A connection that, once the step's rows are read, waits for the other lifecycle's send to
    have read them too (or for the barrier to time out: the other is blocked on the customer's
    row lock, as it should be)."""

    def __init__(self, connection: Connection, barrier: threading.Barrier) -> None:
        self._connection = connection
        self._barrier = barrier

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        result = self._connection.execute(statement, *args, **kwargs)
        if statement is STEP_ROWS:  # executed: read, and locked if the statement locks
            # Broken: the other could not read now, it is waiting on this one's lock.
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait()
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)


class DecidingTogether(EmailActivities):
    """The real send, with the two decisions made to overlap if the database lets them."""

    barrier = threading.Barrier(2, timeout=3)

    def _claim(self, connection: Connection, req: SendStep, now: datetime):  # type: ignore[no-untyped-def]
        return super()._claim(
            _PausedAfterReading(connection, self.barrier),  # type: ignore[arg-type]
            req,
            now,
        )


def test_two_decisions_at_the_same_moment_send_the_prompt_once(
    sessions: sessionmaker[Session],
    fake_sendgrid: FakeSendGrid,  # noqa: F811
) -> None:
    # Both lifecycles start deciding together; each, having read the step's rows, waits for the
    # other to have read them too. On PostgreSQL the customer's row lock (`with_for_update`)
    # keeps the second from reading until the first has committed its claim, so the barrier
    # times out and the second sees the claim. Without the locks both read "nothing sent", pass
    # the barrier together and both send.
    # SQLite has no FOR UPDATE (SQLAlchemy leaves it out) and pysqlite opens its transaction
    # only at the first write: there the claim's transaction begins IMMEDIATE
    # (`database.session.lock_for_decision`), taking the write lock before the first read, so
    # the second waits in the same way. Without that both read "nothing sent" and both send.
    fake_sendgrid.reply = Reply(202, delay_s=0.5)
    shop, orders = two_purchases(sessions)
    DecidingTogether.barrier = threading.Barrier(2, timeout=3)
    prompt = prompt_sender(sessions, fake_sendgrid, shop, DecidingTogether)

    def send(order: str) -> str:
        try:
            return prompt(order)[0]
        except ApplicationError as error:
            return error.type or "ApplicationError"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(send, orders))

    assert len(fake_sendgrid.received) == 1, outcomes
    assert DecidingTogether.barrier.broken  # they never both held "nothing sent yet"
    assert outcomes == ["ClaimUnconfirmed", "sent"]
