"""A batch of SendGrid's Event Webhook read into events, every event checked before anything
is written: a malformed batch is refused whole (400, naming the event and field), so SendGrid's
retry of a fixed batch is the only way any of it lands.

Only what an event needs is kept: its id, type and time, the ids that name our email (the
custom args every send carries, `sg_message_id`), the address and the shop (from the custom
args, or the `shop:` category) for events without them, and a
few fixed-vocabulary details (bounce type, SMTP status). Event types we do not know are kept
too, as SendGrid adds them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from intake.errors import EventRejected
from messages.senders import SHOP_CATEGORY

MAX_EVENT_ID = 100
MAX_EVENT_TYPE = 32
MAX_EMAIL = 320
MAX_MESSAGE_ID = 400
MAX_SHOP_ID = 64
MAX_TIMESTAMP = 2**37  # year 6325: past it a timestamp is a mistake, not a time
DECIMAL_ID = re.compile(r"^[0-9]{1,18}$")
SHORT_TOKEN = re.compile(r"^[A-Za-z0-9 ._-]{1,40}$")
# fixed-vocabulary details worth keeping; free text (bounce reasons, URLs) may name the customer
DETAIL_KEYS = ("type", "bounce_classification", "status", "attempt", "asm_group_id")
DROPPED_REASONS = ("Bounced Address", "Invalid", "Spam Reporting Address", "Unsubscribed Address",
                   "Invalid SMTPAPI header", "Spam Content", "Recipient List over Package Quota")


@dataclass(frozen=True)
class Event:
    sg_event_id: str
    event: str
    occurred_at: datetime
    email: str | None = None
    email_id: int | None = None
    shop_id: str | None = None
    sg_message_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def message_id(self) -> str | None:
        """SendGrid's `sg_message_id` is the Mail Send answer's X-Message-Id, a '.' and more."""
        return self.sg_message_id.partition(".")[0] if self.sg_message_id else None


def parse_batch(body: bytes) -> list[Event]:
    try:
        raw = json.loads(body)
    except UnicodeDecodeError:
        raise EventRejected(400, "body", "is not UTF-8 text") from None
    except (ValueError, RecursionError):
        raise EventRejected(400, "body", "is not valid JSON") from None
    if not isinstance(raw, list):
        raise EventRejected(400, "body", "must be a JSON array of events, as SendGrid posts")
    return [_event(index, item) for index, item in enumerate(raw)]


def _event(index: int, item: Any) -> Event:
    where = f"body[{index}]"
    if not isinstance(item, dict):
        raise EventRejected(400, where, "must be an event object")
    event_id = _text(item, "sg_event_id", where, MAX_EVENT_ID, required=True)
    kind = _text(item, "event", where, MAX_EVENT_TYPE, required=True)
    timestamp = item.get("timestamp")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not (
        0 <= timestamp < MAX_TIMESTAMP
    ):
        raise EventRejected(400, f"{where}.timestamp", "must be a Unix time in whole seconds")
    email_id = item.get("email_id")
    shop_id = item.get("shop_id")
    if not isinstance(shop_id, str):
        shop_id = _shop_category(item.get("category"))
    assert event_id is not None and kind is not None
    return Event(
        sg_event_id=event_id,
        event=kind,
        occurred_at=datetime.fromtimestamp(timestamp, UTC),
        email=_text(item, "email", where, MAX_EMAIL),
        # custom args: another sender on the same SendGrid account may use the names otherwise
        email_id=int(email_id) if isinstance(email_id, str) and DECIMAL_ID.match(email_id)
        else None,
        shop_id=shop_id if isinstance(shop_id, str) and 0 < len(shop_id) <= MAX_SHOP_ID
        else None,
        sg_message_id=_text(item, "sg_message_id", where, MAX_MESSAGE_ID),
        detail=_detail(item),
    )


def _shop_category(category: Any) -> str | None:
    """The shop from the `shop:<id>` category every send carries, for an event SendGrid sent
    without our custom args. SendGrid posts one category as a string and several as a list;
    anything else names no shop (categories only group statistics: never a reason to refuse)."""
    categories = [category] if isinstance(category, str) else category
    if not isinstance(categories, list):
        return None
    shops = {c.removeprefix(SHOP_CATEGORY) for c in categories
             if isinstance(c, str) and c.startswith(SHOP_CATEGORY)}
    return shops.pop() if len(shops) == 1 else None


def _text(item: dict[str, Any], name: str, where: str, limit: int, *,
          required: bool = False) -> str | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise EventRejected(400, f"{where}.{name}",
                            f"must be a string of 1 to {limit} characters")
    return value


def _detail(item: dict[str, Any]) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    for key in DETAIL_KEYS:
        value = item.get(key)
        number = isinstance(value, int) and not isinstance(value, bool)
        if number or (isinstance(value, str) and SHORT_TOKEN.match(value)):
            detail[key] = value
    if item.get("event") == "dropped" and item.get("reason") in DROPPED_REASONS:
        detail["reason"] = item["reason"]
    return detail
