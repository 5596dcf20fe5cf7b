"""What SendGrid said about each email, read from its recorded events: how far delivery got,
when it was delivered, how often it was opened and clicked. Support reads it in `inspect`, the
lifecycle API and `loyalloop outbox` (docs/email.md); beside the intake's record of those events
(sendgrid_store.py) and what they suppress (suppressions.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from database.models import EmailEvent, EmailSuppression
from intake.suppressions import CUSTOMERS_OWN_ONLY

# the furthest an email got, strongest first: a bounce after a deferral is what happened
DELIVERY = ("spamreport", "bounce", "dropped", "delivered", "blocked", "deferred", "processed")
SAID = {"spamreport": "reported as spam", "bounce": "bounced", "dropped": "dropped",
        "delivered": "delivered", "blocked": "blocked", "deferred": "deferred",
        "processed": "accepted by SendGrid"}


def deliveries(session: Session, email_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Each email's delivery, keyed by email_send id (emails without events get none)."""
    ids = list(email_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(EmailEvent.email_send_id, EmailEvent.event, func.count(),
               func.min(EmailEvent.occurred_at))
        .where(EmailEvent.email_send_id.in_(ids))
        .group_by(EmailEvent.email_send_id, EmailEvent.event)
    )
    events: dict[int, dict[str, tuple[int, datetime]]] = {}
    for email_id, kind, count, first in rows:
        events.setdefault(email_id, {})[kind] = (count, first)
    return {email_id: summary(kinds) for email_id, kinds in events.items()}


def summary(kinds: dict[str, tuple[int, Any]]) -> dict[str, Any]:
    furthest = next((kind for kind in DELIVERY if kind in kinds), None)
    delivered = kinds.get("delivered")
    return {
        "status": SAID[furthest] if furthest else None,
        "delivered_at": _iso(delivered[1]) if delivered else None,
        "opens": kinds.get("open", (0, None))[0],
        "clicks": kinds.get("click", (0, None))[0],
        "events": {kind: count for kind, (count, _) in sorted(kinds.items())},
    }


def empty() -> dict[str, Any]:
    return {"status": None, "delivered_at": None, "opens": 0, "clicks": 0, "events": {}}


def suppression(session: Session, shop_id: str, customer_id: str) -> dict[str, Any] | None:
    row = session.scalar(select(EmailSuppression).where(
        EmailSuppression.shop_id == shop_id, EmailSuppression.customer_id == customer_id))
    if row is None or row.reason is None:
        return None
    return {"reason": row.reason, "at": _iso(row.suppressed_at),
            "support_can_lift": row.reason not in CUSTOMERS_OWN_ONLY}


def one_line(delivery: dict[str, Any] | None) -> str:
    """`delivered 2026-11-21T10:00:03+00:00, 2 opens, 1 click` for the command line."""
    if not delivery or not delivery["status"]:
        return ""
    parts = [delivery["status"] + (f" {delivery['delivered_at']}"
                                   if delivery["delivered_at"] else "")]
    for name in ("opens", "clicks"):
        if delivery[name]:
            parts.append(f"{delivery[name]} {name if delivery[name] > 1 else name[:-1]}")
    return ", ".join(parts)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)
