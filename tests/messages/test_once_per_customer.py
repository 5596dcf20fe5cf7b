"""A once-per-customer step (the referral prompt) decided by two lifecycles at the same moment
goes out once: the second decides while holding the customer's row and sees the first on its
way to SendGrid."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from activities.emails import EmailActivities, EmailIdentity
from database.models import Customer, Purchase
from messages.render import TemplateRenderer
from messages.senders import SendGridSender
from tests.messages.test_senders import FakeSendGrid, Reply, fake_sendgrid  # noqa: F401
from workflows.contract import SendStep

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


def test_two_lifecycles_send_the_referral_prompt_once(
    sessions: sessionmaker[Session],
    fake_sendgrid: FakeSendGrid,  # noqa: F811
) -> None:
    # The first send is still out when the second lifecycle decides.
    fake_sendgrid.reply = Reply(202, delay_s=1.0)
    shop, orders = two_purchases(sessions)
    emails = EmailActivities(
        sessions,
        TemplateRenderer(TEMPLATES),
        SendGridSender("SG.test", host=fake_sendgrid.url),
        EmailIdentity("hello@shop.example", "https://shop.example", "secret"),
    )

    def send(order: str) -> tuple[str, str | None]:
        result = emails.send_step(
            SendStep(
                shop_id=shop,
                order_id=order,
                workflow_id=f"purchase-{shop}-{order}",
                step="referral_prompt",
                now=datetime.now(UTC).isoformat(),
                once_per="customer",
            )
        )
        return result.status, result.reason

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(send, orders[0])
        deadline = time.monotonic() + 10
        while not fake_sendgrid.received and time.monotonic() < deadline:
            time.sleep(0.01)  # until the first request has reached SendGrid
        assert fake_sendgrid.received, first.result(timeout=1)
        second = pool.submit(send, orders[1])
        outcomes = [first.result(timeout=30), second.result(timeout=30)]

    assert outcomes == [("sent", None), ("skipped", "already_sent_to_customer")]
    assert len(fake_sendgrid.received) == 1
