"""Every send carries the custom args SendGrid's events name the email by: `email_id` (the
email_send row) and `shop_id`, ids only. Checked on the request the official client really
sends, recorded on its way to Prism serving SendGrid's Mail Send contract (which accepts it)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from messages.senders import Message, SendGridSender
from tests.prism import missing_tools, prism_mock, recording_relay


@pytest.fixture(scope="module")
def prism_url() -> Iterator[str]:
    if missing := missing_tools():
        pytest.skip(f"SendGrid contract check skipped: {' and '.join(missing)} not installed")
    with prism_mock() as url:
        yield url


@pytest.fixture
def recorded(prism_url: str) -> Iterator[tuple[str, list[bytes]]]:
    with recording_relay(prism_url) as relay:
        yield relay

def test_a_send_carries_the_email_row_and_shop_as_custom_args(
    recorded: tuple[str, list[bytes]],
) -> None:
    url, bodies = recorded
    message = Message(to_email="ana@example.com", to_name="Ana", from_email="hi@acme.example",
                      subject="Your kettle", html="<p>Hi</p>", text="Hi",
                      idempotency_key="purchase-acme-1001:day_1", categories=("day_1",),
                      shop_id="acme")

    SendGridSender("SG.contract-test", host=url).send(None, 4711, message)  # Prism: 202

    [body] = bodies
    [personalization] = json.loads(body)["personalizations"]
    assert personalization["custom_args"] == {
        "idempotency_key": "purchase-acme-1001:day_1", "email_id": "4711", "shop_id": "acme",
    }
