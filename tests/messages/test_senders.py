"""The outbox and SendGrid senders, each against the real thing: the migrated app database, and
the real SendGrid client talking HTTP to a local server that answers like SendGrid does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from database.models import EmailSend, OutboxMessage
from messages.senders import (
    Message,
    OutboxSender,
    SendError,
    SendGridSender,
    build_mail,
    clipped,
    make_sender,
    sendgrid_categories,
)

MESSAGE = Message(
    to_email="ana@example.com",
    to_name="Ana Ñúñez",
    from_email="Acme <hello@acme.example>",
    subject="Setting up your kettle",
    html="<p>Hi Ana</p>",
    text="Hi Ana",
    idempotency_key="purchase-acme-1001/day_1",
    categories=("day_1", "shop:acme"),
)
SENDGRID_ERROR = {
    "errors": [
        {
            "message": "The to email does not contain a valid address.",
            "field": "personalizations.0.to",
        }
    ]
}


def email_send(session: Session, key: str = "purchase-acme-1001/day_1") -> EmailSend:
    row = EmailSend(
        idempotency_key=key,
        workflow_id="purchase-acme-1001",
        shop_id="acme",
        order_id="1001",
        customer_id="c-42",
        step="day_1",
        status="pending",
    )
    session.add(row)
    session.flush()
    return row


def outbox_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


# -- outbox ---------------------------------------------------------------------------------------


def test_outbox_keeps_the_message_in_the_callers_transaction(
    own_database: sessionmaker[Session],
) -> None:
    with own_database.begin() as session:
        row = email_send(session)
        message_id = OutboxSender().send(session.connection(), row.id, MESSAGE)
        session.flush()
        assert outbox_count(own_database) == 0  # flushed, not committed: invisible to others

    with own_database() as session:
        kept = session.scalars(select(OutboxMessage)).one()
    assert message_id == f"outbox-{MESSAGE.idempotency_key}"
    assert (kept.email_send_id, kept.to_email, kept.from_email) == (
        row.id,
        MESSAGE.to_email,
        MESSAGE.from_email,
    )
    assert (kept.subject, kept.html, kept.text) == (MESSAGE.subject, MESSAGE.html, MESSAGE.text)


def test_outbox_message_is_gone_when_the_transaction_rolls_back(
    own_database: sessionmaker[Session],
) -> None:
    with own_database.begin() as session:
        row_id = email_send(session).id

    with own_database() as session:
        OutboxSender().send(session.connection(), row_id, MESSAGE)
        session.flush()
        session.rollback()

    assert outbox_count(own_database) == 0


def test_outbox_keeps_one_message_per_email_step(own_database: sessionmaker[Session]) -> None:
    with own_database.begin() as session:
        row_id = email_send(session).id
        OutboxSender().send(session.connection(), row_id, MESSAGE)

    with pytest.raises(IntegrityError), own_database.begin() as session:
        OutboxSender().send(session.connection(), row_id, MESSAGE)

    assert outbox_count(own_database) == 1


# -- SendGrid against a local HTTP server ---------------------------------------------------------


@dataclass
class Reply:
    status: int = 202
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class FakeSendGrid:
    url: str
    reply: Reply = field(default_factory=Reply)
    received: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)


@pytest.fixture
def fake_sendgrid() -> Iterator[FakeSendGrid]:
    """A local server speaking HTTP like SendGrid; each test sets the reply it wants."""
    state = FakeSendGrid(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"null")
            state.received.append((self.path, dict(self.headers), body))
            reply = state.reply
            time.sleep(reply.delay_s)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # the client gave up (timeout test): nothing to report

    server = Server(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def sendgrid_json(status: int) -> Reply:
    return Reply(status, json.dumps(SENDGRID_ERROR).encode(), {"Content-Type": "application/json"})


def test_sendgrid_returns_the_message_id_and_sends_the_idempotency_key(
    fake_sendgrid: FakeSendGrid,
) -> None:
    fake_sendgrid.reply = Reply(202, headers={"X-Message-Id": "sg-abc123"})

    message_id = SendGridSender("SG.test-key", host=fake_sendgrid.url).send(
        None, 0, MESSAGE
    )

    assert message_id == "sg-abc123"
    [(path, headers, body)] = fake_sendgrid.received
    assert path == "/v3/mail/send"
    assert headers["Authorization"] == "Bearer SG.test-key"
    [personalization] = body["personalizations"]
    # the email row SendGrid's events name back (docs/email.md)
    assert personalization["custom_args"] == {"idempotency_key": MESSAGE.idempotency_key,
                                              "email_id": "0"}
    assert personalization["to"] == [{"email": "ana@example.com", "name": "Ana Ñúñez"}]
    assert body["from"] == {"email": "hello@acme.example", "name": "Acme"}
    assert body["subject"] == MESSAGE.subject
    assert body["content"] == [
        {"type": "text/plain", "value": "Hi Ana"},
        {"type": "text/html", "value": "<p>Hi Ana</p>"},
    ]
    assert sorted(body["categories"]) == ["day_1", "shop:acme"]
    assert "custom_args" not in body  # the contract types the top-level one as a string


def test_sendgrid_without_message_id_header_falls_back_to_the_idempotency_key(
    fake_sendgrid: FakeSendGrid,
) -> None:
    message_id = SendGridSender("key", host=fake_sendgrid.url).send(None, 0, MESSAGE)
    assert message_id == MESSAGE.idempotency_key


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_sendgrid_busy_or_down_is_retryable(fake_sendgrid: FakeSendGrid, status: int) -> None:
    fake_sendgrid.reply = sendgrid_json(status)

    with pytest.raises(SendError) as raised:
        SendGridSender("key", host=fake_sendgrid.url).send(None, 0, MESSAGE)

    assert (raised.value.retryable, raised.value.status) == (True, status)


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_sendgrid_refusal_is_permanent_and_says_why(
    fake_sendgrid: FakeSendGrid,
    status: int,
) -> None:
    fake_sendgrid.reply = sendgrid_json(status)

    with pytest.raises(SendError) as raised:
        SendGridSender("key", host=fake_sendgrid.url).send(None, 0, MESSAGE)

    assert (raised.value.retryable, raised.value.status) == (False, status)
    assert "does not contain a valid address" in str(raised.value)
    assert str(status) in str(raised.value)


def test_a_long_error_body_is_cut_between_words_not_inside_an_address(
    fake_sendgrid: FakeSendGrid,
) -> None:
    echo = "x" * 960 + ' "zephyrine.q@example.com" is not reachable'
    fake_sendgrid.reply = Reply(400, json.dumps({"errors": [{"message": echo}]}).encode())

    with pytest.raises(SendError) as raised:
        SendGridSender("key", host=fake_sendgrid.url).send(None, 0, MESSAGE)

    assert "zephyrine" not in str(raised.value) and str(raised.value).endswith("…")
    assert clipped("zephyrine.q@example.com", limit=10) == "…"
    assert clipped("short body") == "short body"


def test_sendgrid_too_slow_is_a_retryable_timeout(fake_sendgrid: FakeSendGrid) -> None:
    fake_sendgrid.reply = Reply(202, headers={"X-Message-Id": "late"}, delay_s=3.0)
    sender = SendGridSender("key", host=fake_sendgrid.url, timeout=0.3)

    started = time.monotonic()
    with pytest.raises(SendError) as raised:
        sender.send(None, 0, MESSAGE)

    assert time.monotonic() - started < 2.0
    assert (raised.value.retryable, raised.value.status) == (True, None)


def test_sendgrid_unreachable_is_retryable(fake_sendgrid: FakeSendGrid) -> None:
    closed = fake_sendgrid.url.rsplit(":", 1)[0] + ":9"  # discard port: nothing listens

    with pytest.raises(SendError) as raised:
        SendGridSender("key", host=closed, timeout=2).send(None, 0, MESSAGE)

    assert (raised.value.retryable, raised.value.status) == (True, None)


API_KEY = "SG.abcdef123.ghijkl456"  # shaped like a SendGrid key
# sendgrid's own check (ValidateApiKey) reads only the content values, and only at their start
# (re.match); the sender scans every string of the request body instead.
CARRYING_AN_API_KEY = [
    pytest.param({"text": f"{API_KEY} is our key"}, "content.value", id="text, first word"),
    pytest.param({"html": API_KEY}, "content.value", id="html, first word"),
    pytest.param({"text": f"Our key is {API_KEY}"}, "content.value", id="text"),
    pytest.param({"html": f"<p>{API_KEY}</p>"}, "content.value", id="html"),
    pytest.param({"subject": f"Your key {API_KEY}"}, "subject", id="subject"),
    pytest.param({"subject": API_KEY}, "subject", id="subject, first word"),
    pytest.param({"to_name": f"Ana {API_KEY}"}, "personalizations.to.name", id="recipient name"),
    pytest.param({"from_email": f"{API_KEY} <hello@acme.example>"}, "from.name",
                 id="sender name"),
    pytest.param({"categories": ("day_1", f"shop:{API_KEY}")}, "categories", id="category"),
    pytest.param({"shop_id": f"shop-{API_KEY}"},
                 "personalizations.custom_args.shop_id", id="custom arg"),
]


@pytest.mark.parametrize(("leaked", "part"), CARRYING_AN_API_KEY)
def test_message_carrying_an_api_key_is_refused_before_sending(
    fake_sendgrid: FakeSendGrid, leaked: dict[str, Any], part: str
) -> None:
    """Wherever in the message the key is (every part SendGrid would be sent), nothing goes
    out, and the refusal does not repeat the key (it reaches the email row and the history)."""
    with pytest.raises(SendError) as raised:
        SendGridSender("key", host=fake_sendgrid.url).send(None, 0, replace(MESSAGE, **leaked))

    assert (raised.value.retryable, raised.value.status) == (False, None)
    assert str(raised.value) == (
        f"message not sendable: something shaped like a SendGrid API key in {part}"
    )
    assert "ghijkl456" not in str(raised.value)
    assert fake_sendgrid.received == []


def test_a_message_without_a_key_is_sent(fake_sendgrid: FakeSendGrid) -> None:
    """The refusal above is for keys only: SendGrid-looking words are sent."""
    fake_sendgrid.reply = Reply(202, headers={"X-Message-Id": "m-1"})
    ordinary = replace(MESSAGE, subject="SG. tips", text="Our SG.1 kettle, SG model")
    assert SendGridSender("key", host=fake_sendgrid.url).send(None, 0, ordinary) == "m-1"
    assert len(fake_sendgrid.received) == 1


# -- building the request -------------------------------------------------------------------------


def test_categories_follow_sendgrids_rules() -> None:
    many = [f"c{i}" for i in range(15)]
    assert sendgrid_categories(many) == many[:10]
    assert sendgrid_categories(["day_1", "day_1", " ", ""]) == ["day_1"]
    assert sendgrid_categories(["x" * 300]) == ["x" * 255]
    assert sendgrid_categories(["shop:café", "ショップ", "shop:ñandú"]) == [
        "shop:cafe",
        "shop:nandu",
    ]


def test_empty_parts_are_left_out() -> None:
    html_only = replace(MESSAGE, text="")
    assert build_mail(html_only).get()["content"] == [
        {"type": "text/html", "value": "<p>Hi Ana</p>"}
    ]


def test_make_sender_uses_sendgrid_only_with_a_key() -> None:
    assert make_sender(None, None).name == "outbox"
    assert make_sender("", "http://127.0.0.1:1").name == "outbox"
    sender = make_sender("key", "http://127.0.0.1:1")
    assert isinstance(sender, SendGridSender)
    assert sender.name == "sendgrid"
