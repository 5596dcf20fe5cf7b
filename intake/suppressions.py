"""What SendGrid's events mean for a customer's marketing email, and who may lift it.

A hard bounce, a drop for an invalid or bounced address, a spam report and an unsubscribe made
at SendGrid suppress marketing email to the customer; so do `DEFERRALS_TO_SUPPRESS` deferrals
or blocks in a row (a delivery ends the row). Each email step checks it at the moment of sending
(activities/emails.py), as it checks an unsubscribe. A stronger reason replaces a weaker one,
never the reverse, so a spam report is not hidden by a later bounce."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from database.models import EmailSuppression
from intake.sendgrid_events import Event

DEFERRALS_TO_SUPPRESS = 7
# reason -> strength; support lifts all but a spam report, which only the customer's own
# resubscribe lifts (the customer told their mailbox this is spam: we need them to say otherwise)
STRENGTH = {"deferred": 1, "bounce": 2, "dropped": 2, "unsubscribe": 3, "group_unsubscribe": 3,
            "spamreport": 4}
CUSTOMERS_OWN_ONLY = frozenset({"spamreport"})
DROPPED = {"Bounced Address": "dropped", "Invalid": "dropped",
           "Spam Reporting Address": "spamreport", "Unsubscribed Address": "unsubscribe"}


def suppressing_reason(event: Event) -> str | None:
    """The suppression this event causes by itself, if any."""
    kind = event.event
    if kind == "bounce":
        return None if event.detail.get("type") == "blocked" else "bounce"
    if kind == "dropped":
        return DROPPED.get(str(event.detail.get("reason")))
    return kind if kind in ("spamreport", "unsubscribe", "group_unsubscribe") else None


def is_deferral(event: Event) -> bool:
    """A delivery that did not happen yet: `deferred`, `blocked`, or a bounce of type blocked
    (SendGrid reports a block as either)."""
    return event.event in ("deferred", "blocked") or (
        event.event == "bounce" and event.detail.get("type") == "blocked"
    )


def stronger(current: str | None, new: str | None) -> str | None:
    if new is None:
        return current
    if current is None or STRENGTH[new] > STRENGTH.get(current, 0):
        return new
    return current


@dataclass
class CustomerState:
    """One customer's suppression row as a batch changes it."""

    row_id: int
    reason: str | None
    deferrals: int
    sg_event_id: str | None = None
    suppressed_at: datetime | None = None
    changed: bool = False

    def apply(self, event: Event) -> None:
        before = (self.reason, self.deferrals)
        reason = suppressing_reason(event)
        if is_deferral(event):
            self.deferrals += 1
            if self.deferrals >= DEFERRALS_TO_SUPPRESS:
                reason = stronger(reason, "deferred")
        elif event.event == "delivered":
            self.deferrals = 0
        if stronger(self.reason, reason) != self.reason:
            self.reason = reason
            self.sg_event_id = event.sg_event_id
            self.suppressed_at = event.occurred_at
        self.changed |= (self.reason, self.deferrals) != before


class LiftRefused(Exception):
    """The suppression is not support's to lift; the message says who can."""


def lift(connection: Connection, shop_id: str, customer_id: str, now: datetime, *,
         customers_own: bool) -> str | None:
    """End the customer's suppression; returns the reason lifted (None if there was none).
    Support (`customers_own=False`) may not lift a spam report: LiftRefused."""
    row = connection.execute(
        select(EmailSuppression.id, EmailSuppression.reason)
        .where(EmailSuppression.shop_id == shop_id, EmailSuppression.customer_id == customer_id)
        .with_for_update()
    ).first()
    if row is None or row.reason is None:
        return None
    if row.reason in CUSTOMERS_OWN_ONLY and not customers_own:
        raise LiftRefused(
            f"the customer reported a Loyalloop email as spam ({row.reason}); only the "
            "customer's own resubscribe (the unsubscribe page's resubscribe button) lifts that"
        )
    connection.execute(
        update(EmailSuppression).where(EmailSuppression.id == row.id)
        .values(reason=None, lifted_at=now, deferrals_in_a_row=0)
    )
    return str(row.reason)
