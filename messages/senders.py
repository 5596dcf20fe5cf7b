"""Where a rendered email goes: the outbox table (no SendGrid key) or SendGrid's Mail Send API.

A sender either returns the provider's message id or raises `SendError`, whose `retryable` flag
decides whether the email activity retries (provider down, rate limited, timed out) or records
the email as failed for a person to act on (SendGrid refused the request itself).
"""

from __future__ import annotations

import http.client
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import python_http_client
import sendgrid
from sendgrid.helpers.mail import (
    ApiKeyIncludedException,
    Category,
    CustomArg,
    From,
    Header,
    Mail,
    SendGridException,
    To,
)
from sqlalchemy import Connection, insert

from database.models import OutboxMessage

SENDGRID_HOST = "https://api.sendgrid.com"
# SendGrid's Mail Send contract: at most 10 unique categories of at most 255 characters each,
# and its category docs ask for 7-bit US-ASCII. Categories only group statistics, so a send is
# never refused over one: they are cleaned instead.
MAX_CATEGORIES = 10
# Every send's categories are its step and `shop:<id>`: SendGrid's events carry them back, which
# names the shop of an event that lost its custom args (intake/sendgrid_events.py).
SHOP_CATEGORY = "shop:"
MAX_CATEGORY_LENGTH = 255
ERROR_BODY_LIMIT = 1000
BETWEEN_WORDS = ' \t\n",;<>()[]{}'
KEEP = insert(OutboxMessage)
# A SendGrid API key as sendgrid's own validator spells it (SG.<id>.<secret>, with `-` and `_`
# as keys are issued), anywhere in a string: the validator itself checks only the content values,
# and only at their start (re.match), so a key in a subject, a name or mid-text would go out.
API_KEY_SHAPE = re.compile(r"SG\.[0-9A-Za-z_-]+\.[0-9A-Za-z_-]+")
KEY_IN = "something shaped like a SendGrid API key in"
# How python_http_client starts its log line of an answer, before the body: "POST Response: 400".
RESPONSE_LINE = re.compile(r"\w+ Response: \d+")


class _NoSecretsInLogs(logging.Filter):
    """The official client logs the request headers (`Authorization: Bearer <API key>`) and
    the whole message (the customer's address and name) at DEBUG, and SendGrid's answer, whose
    error bodies may echo the recipient: drop the first two and the answer's body, whatever
    level an operator turns logging up to."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if answer := RESPONSE_LINE.match(message):
            record.msg, record.args = f"{answer.group(0)} (body not logged)", ()
        return not message.startswith(("HEADERS:", "PAYLOAD:"))


logging.getLogger("python_http_client.client").addFilter(_NoSecretsInLogs())


@dataclass(frozen=True)
class Message:
    to_email: str
    to_name: str | None
    from_email: str
    subject: str
    html: str
    text: str
    idempotency_key: str
    categories: tuple[str, ...] = ()
    list_unsubscribe: str | None = None  # the customer's /u/… link (RFC 8058 one-click)
    shop_id: str = ""


def unsubscribe_headers(message: Message) -> dict[str, str]:
    """RFC 2369 and RFC 8058: a mail client shows its own unsubscribe button and POSTs
    `List-Unsubscribe=One-Click` to the link, with no page in between."""
    if not message.list_unsubscribe:
        return {}
    return {"List-Unsubscribe": f"<{message.list_unsubscribe}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


class SendError(Exception):
    def __init__(self, message: str, *, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class Sender(Protocol):
    """`connection` holds the transaction claiming email row `email_id`: the outbox writes in
    it, a provider is called after it committed and gets None."""

    name: str

    def send(self, connection: Connection | None, email_id: int, message: Message) -> str: ...


class OutboxSender:
    """Keeps the email in `email_outbox` instead of sending it (development, demos, tests).

    The row is only added: the caller commits it in the transaction that marks the email sent,
    so an outbox email exists exactly when its step is recorded as sent. Its message id is the
    email's idempotency key, known before anything is written.
    """

    name = "outbox"

    def send(self, connection: Connection | None, email_id: int, message: Message) -> str:
        assert connection is not None, "the outbox writes in the claiming transaction"
        connection.execute(KEEP, {
            "email_send_id": email_id,
            "to_email": message.to_email,
            "from_email": message.from_email,
            "subject": message.subject,
            "html": message.html,
            "text": message.text,
            "headers": unsubscribe_headers(message),
        })
        return f"outbox-{message.idempotency_key}"


class SendGridSender:
    """Sends through SendGrid's v3 Mail Send API with the official client."""

    name = "sendgrid"

    def __init__(self, api_key: str, host: str | None = None, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._api = sendgrid.SendGridAPIClient(api_key, host=host or SENDGRID_HOST)
        # SendGridAPIClient builds its HTTP client without a timeout (urllib then waits forever);
        # every request client is derived from this one and inherits the attribute.
        self._api.client.timeout = timeout

    def send(self, connection: Connection | None, email_id: int, message: Message) -> str:
        try:
            body = sendable_body(build_mail(message, email_id))
        except ApiKeyIncludedException:
            # sendgrid's own validator, which sees the contents only.
            raise SendError(
                f"message not sendable: {KEY_IN} content.value", retryable=False
            ) from None
        except (SendGridException, TypeError, ValueError) as error:
            # e.g. an API key pasted into a template: this message must never go out as is.
            raise SendError(f"message not sendable: {error}", retryable=False) from None
        try:
            response = self._api.send(body)
        except python_http_client.HTTPError as error:
            raise _http_error(error) from None
        except (OSError, http.client.HTTPException) as error:
            # URLError, socket timeouts, refused or reset connections, truncated responses.
            raise SendError(f"SendGrid unreachable: {error!r}", retryable=True) from error
        return response.headers.get("X-Message-Id") or message.idempotency_key


def build_mail(message: Message, email_id: int | None = None) -> Mail:
    """The Mail Send body. The idempotency key travels in the personalization's custom_args
    (an object there; the contract types the top-level `custom_args` as a string), with the
    email row and shop SendGrid's events name back (docs/email.md): ids only, no personal
    data, since SendGrid echoes custom args in every event."""
    mail = Mail(
        from_email=From(message.from_email),
        to_emails=To(message.to_email, message.to_name or None),
        subject=message.subject,
        # Empty parts are left out: the contract requires a non-empty value for each content.
        plain_text_content=message.text or None,
        html_content=message.html or None,
    )
    mail.add_custom_arg(CustomArg("idempotency_key", message.idempotency_key, p=0))
    if email_id is not None:
        mail.add_custom_arg(CustomArg("email_id", str(email_id), p=0))
        if message.shop_id:
            mail.add_custom_arg(CustomArg("shop_id", message.shop_id, p=0))
    for category in sendgrid_categories(message.categories):
        mail.add_category(Category(category))
    for name, value in unsubscribe_headers(message).items():
        mail.add_header(Header(name, value))
    return mail


def sendable_body(mail: Mail) -> dict[str, Any]:
    """The request body, refused (ValueError naming the parts, never the key) when any string
    in it, wherever SendGrid would read it, carries something shaped like an API key."""
    body: dict[str, Any] = mail.get()
    parts = sorted({path for path, text in _strings(body) if API_KEY_SHAPE.search(text)})
    if parts:
        raise ValueError(f"{KEY_IN} {', '.join(parts)}")
    return body


def _strings(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON document with where it is (`subject`, `content.value`)."""
    if isinstance(value, str):
        yield path or "body", value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key, path or "body")
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, path)


def sendgrid_categories(categories: Iterable[str]) -> list[str]:
    """The categories as SendGrid accepts them: ASCII, non-empty, at most 255 characters,
    unique, at most 10 (the first ones win)."""
    cleaned: list[str] = []
    for category in categories:
        ascii_only = unicodedata.normalize("NFKD", category).encode("ascii", "ignore").decode()
        value = ascii_only.strip()[:MAX_CATEGORY_LENGTH]
        if value and value not in cleaned:
            cleaned.append(value)
    return cleaned[:MAX_CATEGORIES]


def _http_error(error: python_http_client.HTTPError) -> SendError:
    status = int(error.status_code)
    body = error.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    retryable = status in (408, 429) or status >= 500
    return SendError(
        f"SendGrid answered {status}: {clipped(body)}", retryable=retryable, status=status
    )


def clipped(body: str, limit: int = ERROR_BODY_LIMIT) -> str:
    """At most `limit` characters, cut between words: a body echoing the recipient must not be
    cut inside the address, whose remains no scrubbing (activities/redact.py) would recognise."""
    if len(body) <= limit:
        return body
    cut = body[:limit]
    end = max(cut.rfind(mark) for mark in BETWEEN_WORDS)
    return f"{cut[:end + 1] if end > 0 else ''}…"


def make_sender(api_key: str | None, host: str | None) -> Sender:
    """SendGrid when a key is configured, else the outbox."""
    if not api_key:
        return OutboxSender()
    return SendGridSender(api_key, host=host)
