"""RFC 8058's headers on what the SendGrid sender sends: the real `sendgrid` client, through a
recording relay, to Prism serving SendGrid's Mail Send contract (a request breaking it is a 4xx),
and in the outbox's stored message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from database.models import EmailSend, OutboxMessage
from database.session import make_engine, make_sessionmaker, upgrade
from messages.senders import Message, OutboxSender, SendGridSender
from tests.prism import missing_tools, prism_mock, recording_relay

LINK = "https://go.loyalloop.example/u/acme/c-42?token=0123456789abcdef0123456789abcdef"
MESSAGE = Message(to_email="ana@example.com", to_name="Ana", from_email="hello@acme.example",
                  subject="Setting up your kettle", html="<p>Hi</p>", text="Hi",
                  idempotency_key="purchase-acme-1001/day_1", categories=("day_1",),
                  list_unsubscribe=LINK)
EXPECTED = {"List-Unsubscribe": f"<{LINK}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


@pytest.fixture(scope="module")
def prism_url() -> Iterator[str]:
    if missing := missing_tools():
        pytest.skip(f"SendGrid contract check skipped: {' and '.join(missing)} not installed")
    with prism_mock() as url:
        yield url


@pytest.fixture
def relay(prism_url: str) -> Iterator[tuple[str, list[bytes]]]:
    with recording_relay(prism_url) as recorded:
        yield recorded


def test_sendgrid_gets_both_headers_and_the_contract_accepts_them(
    relay: tuple[str, list[bytes]],
) -> None:
    url, bodies = relay
    message_id = SendGridSender("SG.contract-test", host=url).send(None, 0, MESSAGE)

    assert message_id == MESSAGE.idempotency_key  # Prism's 202: the contract holds
    [body] = bodies
    assert json.loads(body)["headers"] == EXPECTED


def test_a_message_without_a_link_carries_no_unsubscribe_headers(
    relay: tuple[str, list[bytes]],
) -> None:
    url, bodies = relay
    SendGridSender("SG.contract-test", host=url).send(None, 0, replace(MESSAGE,
                                                                      list_unsubscribe=None))
    assert "headers" not in json.loads(bodies[0])


def test_the_outbox_keeps_the_headers_with_the_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        row = EmailSend(idempotency_key=MESSAGE.idempotency_key, workflow_id="purchase-acme-1001",
                        shop_id="acme", order_id="1001", customer_id="c-42", step="day_1",
                        status="sending")
        session.add(row)
        session.flush()
        OutboxSender().send(session.connection(), row.id, MESSAGE)
    with sessions() as session:
        kept = session.scalar(select(OutboxMessage))
        assert kept is not None and kept.headers == EXPECTED
    engine.dispose()
