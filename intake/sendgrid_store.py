"""Recording a verified batch of SendGrid events in one transaction: each event once (its
`sg_event_id` is a unique key, so SendGrid's retry of a batch adds nothing and changes
nothing), mapped to its email, and its effects applied only by the statement that added it.

Mapping, in order: the `email_id` custom arg every send carries (checked against its `shop_id`
arg); the `sg_message_id` up to its first '.', which is the Mail Send answer's X-Message-Id;
the normalised address within the shop, when the event names the shop (SendGrid sends some
bounces without custom args). The hot path is a handful of prepared Core statements per batch,
whatever its size (docs/benchmark.md: events_per_s)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, tuple_, update

from database.models import Customer, EmailEvent, EmailSend, EmailSuppression
from database.session import lock_for_decision
from database.upsert import InsertNew
from intake.sendgrid_events import Event
from intake.suppressions import CustomerState, is_deferral, suppressing_reason
from ledger.referrals import normalize_email

CONFIRMING = ("processed", "delivered")
ADD_EVENTS = InsertNew(EmailEvent, [EmailEvent.sg_event_id], EmailEvent.sg_event_id)
EMAILS_BY_ID = select(
    EmailSend.id, EmailSend.shop_id, EmailSend.customer_id
).where(EmailSend.id.in_(bindparam("ids", expanding=True)))
EMAILS_BY_MESSAGE = select(
    EmailSend.id, EmailSend.shop_id, EmailSend.customer_id, EmailSend.provider_message_id
).where(EmailSend.provider_message_id.in_(bindparam("ids", expanding=True)))
CUSTOMERS_BY_ADDRESS = select(
    Customer.shop_id, Customer.customer_id, Customer.email_normalized
).where(tuple_(Customer.shop_id, Customer.email_normalized)
        .in_(bindparam("pairs", expanding=True)))
# Rows a confirming event may still change; most are `sent` already by SendGrid's 202.
STILL_SENDING = (
    select(EmailSend.id, EmailSend.provider_message_id)
    .where(EmailSend.id.in_(bindparam("ids", expanding=True)), EmailSend.status == "sending")
    .order_by(EmailSend.id)
    .with_for_update()
)
CONFIRM_SENT = (
    update(EmailSend)
    .where(EmailSend.id == bindparam("row_id"), EmailSend.status == "sending")
    .values(status="sent", sent_at=bindparam("at"), provider="sendgrid",
            provider_message_id=bindparam("message_id"))
)
ADD_SUPPRESSION_ROW = InsertNew(
    EmailSuppression, [EmailSuppression.shop_id, EmailSuppression.customer_id], EmailSuppression.id
)
SUPPRESSION_ROWS = (
    select(EmailSuppression.id, EmailSuppression.shop_id, EmailSuppression.customer_id,
           EmailSuppression.reason, EmailSuppression.deferrals_in_a_row)
    .where(tuple_(EmailSuppression.shop_id, EmailSuppression.customer_id)
           .in_(bindparam("pairs", expanding=True)))
    .order_by(EmailSuppression.id)
    .with_for_update()
)
CHANGE_SUPPRESSION = update(EmailSuppression).where(EmailSuppression.id == bindparam("row_id"))
COUNT_DEFERRALS = CHANGE_SUPPRESSION.values(deferrals_in_a_row=bindparam("deferrals"))
SUPPRESS = CHANGE_SUPPRESSION.values(
    deferrals_in_a_row=bindparam("deferrals"), reason=bindparam("reason"),
    suppressed_at=bindparam("at"), sg_event_id=bindparam("event_id"), lifted_at=None,
)


@dataclass(frozen=True)
class Target:
    """Whom an event is about: the email (when known) and the shop's customer."""

    email_send_id: int | None
    shop_id: str | None
    customer_id: str | None


@dataclass(frozen=True)
class Recorded:
    received: int
    recorded: int
    unmapped: int


def record_batch(engine: Engine, events: list[Event]) -> Recorded:
    unique = list({e.sg_event_id: e for e in reversed(events)}.values())[::-1]
    with engine.begin() as connection:
        lock_for_decision(connection)
        targets = _targets(connection, unique)
        rows = [_row(e, targets[e.sg_event_id]) for e in unique]
        added: set[str] = set()
        if rows:
            added = set(connection.execute(ADD_EVENTS(connection), rows).scalars())
        new = sorted((e for e in unique if e.sg_event_id in added),
                     key=lambda e: e.occurred_at)
        _confirm_sends(connection, new, targets)
        _suppress(connection, new, targets)
    unmapped = sum(1 for e in new if targets[e.sg_event_id].customer_id is None)
    return Recorded(len(events), len(new), unmapped)


def _row(event: Event, target: Target) -> dict[str, Any]:
    return {"sg_event_id": event.sg_event_id, "event": event.event,
            "occurred_at": event.occurred_at, "email_send_id": target.email_send_id,
            "shop_id": target.shop_id, "customer_id": target.customer_id,
            "sg_message_id": event.sg_message_id, "detail": event.detail}


def _targets(connection: Connection, events: list[Event]) -> dict[str, Target]:
    found: dict[str, Target] = {}
    ids = {e.email_id for e in events if e.email_id is not None}
    by_id = {r.id: r for r in connection.execute(EMAILS_BY_ID, {"ids": list(ids)})} if ids else {}
    for e in events:
        row = by_id.get(e.email_id) if e.email_id is not None else None
        if row is not None:
            found[e.sg_event_id] = _target(e, row)
    message_ids = {e.message_id for e in events if e.sg_event_id not in found and e.message_id}
    by_message = {
        r.provider_message_id: r
        for r in connection.execute(EMAILS_BY_MESSAGE, {"ids": list(message_ids)})
    } if message_ids else {}
    for e in events:
        row = by_message.get(e.message_id) if e.sg_event_id not in found else None
        if row is not None:
            found[e.sg_event_id] = _target(e, row)
    pairs = {(e.shop_id, normalize_email(e.email)) for e in events
             if e.sg_event_id not in found and e.shop_id and e.email}
    customers: dict[tuple[str, str], list[str]] = defaultdict(list)
    if pairs:
        for r in connection.execute(CUSTOMERS_BY_ADDRESS, {"pairs": list(pairs)}):
            customers[(r.shop_id, r.email_normalized)].append(r.customer_id)
    for e in events:
        if e.sg_event_id in found:
            continue
        matches = customers.get((e.shop_id, normalize_email(e.email))) if (
            e.shop_id and e.email) else None
        # an address two customer ids share names neither for sure: the event stays unmapped
        customer = matches[0] if matches and len(matches) == 1 else None
        found[e.sg_event_id] = Target(None, e.shop_id if customer else None, customer)
    return found


def _target(event: Event, row: Any) -> Target:
    """The email row an event names, unless the event names another shop: ids that disagree
    name no one for sure, so the event is kept and mapped to nothing."""
    if event.shop_id in (None, row.shop_id):
        return Target(row.id, row.shop_id, row.customer_id)
    return Target(None, None, None)


def _confirm_sends(connection: Connection, new: list[Event], targets: dict[str, Target]) -> None:
    """A `processed` or `delivered` event confirms that SendGrid took the send: a row still
    `sending` (its worker died, or the 202 was lost) becomes `sent` at the event's time."""
    earliest: dict[int, Event] = {}
    for e in new:  # in time order: the first confirmation is when it was sent
        row_id = targets[e.sg_event_id].email_send_id
        if e.event in CONFIRMING and row_id is not None:
            earliest.setdefault(row_id, e)
    if not earliest:
        return
    sending = connection.execute(STILL_SENDING, {"ids": list(earliest)}).all()
    if sending:
        connection.execute(CONFIRM_SENT, [
            {"row_id": r.id, "at": earliest[r.id].occurred_at,
             "message_id": r.provider_message_id or earliest[r.id].message_id}
            for r in sending
        ])


def _suppress(connection: Connection, new: list[Event], targets: dict[str, Target]) -> None:
    """Suppressions and deferral streaks of the customers this batch's new events concern."""
    concerning = [e for e in new
                  if is_deferral(e) or suppressing_reason(e) or e.event == "delivered"]
    by_customer: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in concerning:
        target = targets[e.sg_event_id]
        if target.shop_id is not None and target.customer_id is not None:
            by_customer[(target.shop_id, target.customer_id)].append(e)
    if not by_customer:
        return
    rows = {(r.shop_id, r.customer_id): r
            for r in connection.execute(SUPPRESSION_ROWS, {"pairs": list(by_customer)})}
    missing = [key for key, events in by_customer.items() if key not in rows
               and any(is_deferral(e) or suppressing_reason(e) for e in events)]
    if missing:
        connection.execute(ADD_SUPPRESSION_ROW(connection), [
            {"shop_id": shop, "customer_id": customer, "deferrals_in_a_row": 0}
            for shop, customer in missing])
        rows |= {(r.shop_id, r.customer_id): r
                 for r in connection.execute(SUPPRESSION_ROWS, {"pairs": missing})}
    changes = []
    for key, events in by_customer.items():
        row = rows.get(key)
        if row is None:
            continue  # only deliveries, and no streak to end
        state = CustomerState(row.id, row.reason, row.deferrals_in_a_row)
        for e in events:
            state.apply(e)
        if state.changed:
            changes.append(_change(state, row.reason))
    for statement in (COUNT_DEFERRALS, SUPPRESS):
        params = [change for change in changes if (len(change) > 2) == (statement is SUPPRESS)]
        if params:
            connection.execute(statement, params)


def _change(state: CustomerState, before: str | None) -> dict[str, Any]:
    change: dict[str, Any] = {"row_id": state.row_id, "deferrals": state.deferrals}
    if state.reason != before:
        change |= {"reason": state.reason, "at": state.suppressed_at,
                   "event_id": state.sg_event_id}
    return change


