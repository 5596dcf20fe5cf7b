"""The email step: decide send or skip, render at send time, send once.

The decision is made in one transaction holding the customer's row, so an erasure, an
unsubscribe or another lifecycle's once-per-customer send either landed before it (and is seen)
or waits for it (and sees this email claimed). The outbox writes the message in that same
transaction, which marks the step sent: exactly once, one commit. With SendGrid the transaction
leaves the row `sending`, the request goes out, and a second one records the 202. SendGrid has
no idempotency key, so a retry that finds its own row still `sending` (the worker died, the 202
was not recorded, or the call timed out after the request went out) does not resend at once:
it answers `unconfirmed`, and the workflow asks again until SendGrid's event marks the row sent
(the Event Webhook) or the wait is over (docs/lifecycle.md: "A send SendGrid may have taken").
A dropped database connection at that commit is retried in place rather than resending.
"""

from __future__ import annotations

import time
import urllib.error
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import without_personal_data
from activities.purchases import purchase_not_found
from activities.redact import Redactor
from activities.schedule import next_send_hour
from database.models import Creator, Customer, EmailSend, EmailSuppression, Purchase, skus_of
from database.session import AnyRow, engine_of, lock_for_decision
from messages.context import build_context, unsubscribe_url
from messages.render import Rendered, TemplateProblem, TemplateRenderer
from messages.senders import SHOP_CATEGORY, Message, Sender, SendError
from workflows.contract import EmailStatus, SendStep, StepResult

DONE = ("sent", "skipped")
# Sent, or handed to the provider and not yet confirmed: either counts as "sent before".
CLAIMED = ("sent", "sending")
CONFIRM_ATTEMPTS = 4
# How long another lifecycle's unconfirmed send of a once-per step makes this one wait; after
# it, the claim counts as sent (its lifecycle may have stopped with the request out).
CLAIM_WAIT = timedelta(minutes=2)
# How long a send that may have reached SendGrid waits for its event before it is sent again.
UNCONFIRMED_WAIT = timedelta(minutes=10)

# The step's hot path runs prepared Core statements (compiled once, cached), like the intake's:
# the ORM's unit of work cost more CPU than everything else the step does.
# The purchase, with its customer's row locked (the one lock every send decision takes), and
# the creator it is attributed to, if any, for the message.
LOCKED_PURCHASE = (
    select(
        Purchase.placed_at, Purchase.total, Purchase.currency, Purchase.items,
        Purchase.refunded_amount, Customer.customer_id, Customer.email, Customer.first_name,
        Customer.locale, Customer.timezone, Customer.referral_code, Customer.marketing_consent,
        Customer.unsubscribed_at, Customer.erased_at,
        Creator.name.label("creator_name"), Creator.code.label("creator_code"),
        EmailSuppression.reason.label("suppressed_for"),
    )
    .join(Customer, Purchase.customer_pk == Customer.id)
    .outerjoin(EmailSuppression, and_(EmailSuppression.shop_id == Customer.shop_id,
                                      EmailSuppression.customer_id == Customer.customer_id))
    .outerjoin(
        Creator, and_(Purchase.attribution == "creator", Creator.code == Purchase.referrer_code)
    )
    .where(Purchase.shop_id == bindparam("shop_id"), Purchase.order_id == bindparam("order_id"))
    .with_for_update(of=Customer)
)
# This step's rows for the customer: this lifecycle's own (by key) and other lifecycles' sends
# that may make it unneeded.
STEP_ROWS = (
    select(EmailSend.id, EmailSend.idempotency_key, EmailSend.workflow_id, EmailSend.status,
           EmailSend.skip_reason, EmailSend.skus, EmailSend.decided_at, EmailSend.attempts)
    .where(EmailSend.shop_id == bindparam("shop_id"),
           EmailSend.customer_id == bindparam("customer_id"),
           EmailSend.step == bindparam("step"))
    .with_for_update()
)
# When the customer was last sent (or handed SendGrid) a marketing email by any lifecycle, for
# the frequency cap: the latest claim and the latest recorded send, whichever is later.
LAST_MARKETING = select(func.max(EmailSend.decided_at), func.max(EmailSend.sent_at)).where(
    EmailSend.shop_id == bindparam("shop_id"),
    EmailSend.customer_id == bindparam("customer_id"),
    EmailSend.marketing.is_(True),
    EmailSend.status.in_(CLAIMED),
    EmailSend.idempotency_key != bindparam("key"),
)
ADD_ROW = insert(EmailSend).returning(EmailSend.id)
CHANGE_ROW = update(EmailSend).where(EmailSend.id == bindparam("row_id"))
RECORD_ERROR = CHANGE_ROW.where(EmailSend.status.not_in(DONE))
# The error of a request that may have reached SendGrid: the row stays `sending`, for its event.
RECORD_UNCONFIRMED = CHANGE_ROW.where(EmailSend.status == "sending")


@dataclass(frozen=True)
class EmailIdentity:
    """Where marketing email comes from and how its links are signed."""

    from_email: str
    public_url: str
    link_secret: str


class EmailActivities:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        renderer: TemplateRenderer,
        sender: Sender,
        identity: EmailIdentity,
        unconfirmed_wait: timedelta = UNCONFIRMED_WAIT,
    ) -> None:
        self.engine = engine_of(sessions)
        self.renderer = renderer
        self.sender = sender
        self.identity = identity
        self.unconfirmed_wait = unconfirmed_wait

    @activity.defn
    @without_personal_data
    def send_step(self, req: SendStep) -> StepResult:
        now = req.now
        with self.engine.begin() as connection:
            lock_for_decision(connection)
            outcome = self._claim(connection, req, now)
            if isinstance(outcome, _Claimed) and self.sender.name == "outbox":
                outcome = self._keep_in_outbox(connection, outcome, now)
        if isinstance(outcome, _Claimed):
            outcome = self._send_to_provider(outcome, now)
        if isinstance(outcome, _Retry):
            raise ApplicationError(outcome.error, type=outcome.kind)
        return outcome

    def _claim(self, connection: Connection, req: SendStep, now: datetime) -> Outcome:
        """Decide, holding the customer's row: done before, skipped, or rendered and claimed."""
        purchase = connection.execute(
            LOCKED_PURCHASE, {"shop_id": req.shop_id, "order_id": req.order_id}
        ).first()
        if purchase is None:
            raise purchase_not_found(req.shop_id, req.order_id)
        rows = connection.execute(STEP_ROWS, {
            "shop_id": req.shop_id, "customer_id": purchase.customer_id, "step": req.step,
        }).all()
        row = next((r for r in rows if r.idempotency_key == req.key), None)
        if row is not None and row.status in DONE:
            return StepResult(req.step, EmailStatus(row.status), row.skip_reason)
        if unconfirmed := self._unconfirmed(req, row):
            return unconfirmed
        step_row = _StepRow(connection, req, purchase, row)
        others = [r for r in rows if r.workflow_id != req.workflow_id and r.status in CLAIMED]
        reason = _skip_reason(req, purchase, others)
        if reason:
            step_row.write(status="skipped", skip_reason=reason, decided_at=now,
                           deferred_until=None)
            return StepResult(req.step, EmailStatus.SKIPPED, reason)
        if until := _deferred_until(connection, req, purchase):
            # Held back, never dropped: the workflow asks again at that send hour.
            step_row.write(status="deferred", skip_reason="frequency_cap", deferred_until=until,
                           decided_at=activity.info().current_attempt_scheduled_time)
            return StepResult(req.step, EmailStatus.DEFERRED, "frequency_cap", deferred_until=until)
        attempts = (row.attempts if row else 0) + 1
        unsubscribe = unsubscribe_url(
            self.identity.public_url, self.identity.link_secret, req.shop_id, purchase.customer_id
        )
        redact = _redactor(purchase, unsubscribe)
        try:
            rendered = self.renderer.render(
                req.step, self._context(req, purchase, unsubscribe), locale=purchase.locale,
                skus=skus_of(purchase.items),
            )
        except TemplateProblem as problem:
            # Kept failing with the error for the marketer; the retry renders again.
            error = redact(str(problem))
            step_row.write(status="failing", attempts=attempts, skip_reason=None,
                           deferred_until=None, last_error=f"template: {error}"[:2000])
            return _Retry("TemplateError", error)
        # Claimed while holding the customer's row: another lifecycle deciding a
        # once-per-customer step now sees this one on its way.
        row_id = step_row.write(status="sending", attempts=attempts, skip_reason=None,
                                deferred_until=None,
                                decided_at=activity.info().current_attempt_scheduled_time)
        return _Claimed(
            row_id, req.step, rendered, self._message(req, purchase, rendered), redact
        )

    def _unconfirmed(self, req: SendStep, row: AnyRow | None) -> StepResult | None:
        """An earlier attempt's send still `sending` may be with SendGrid: wait for its event
        until `unconfirmed_wait` after the claim, then send again. Judged on the Temporal
        server's clock, like the claim. The outbox commits its message with the row: no wait."""
        if (
            not req.wait_if_unconfirmed
            or self.sender.name == "outbox"
            or row is None
            or row.status != "sending"
            or row.decided_at is None
        ):
            return None
        resend_at = row.decided_at + self.unconfirmed_wait
        if activity.info().current_attempt_scheduled_time >= resend_at:
            return None
        return StepResult(req.step, EmailStatus.UNCONFIRMED, claimed_at=row.decided_at,
                          resend_at=resend_at)

    def _keep_in_outbox(
        self, connection: Connection, claimed: _Claimed, now: datetime
    ) -> StepResult | _Retry:
        """The outbox keeps the message in the claiming transaction: kept exactly when the step
        is recorded sent."""
        try:
            message_id = self.sender.send(connection, claimed.row_id, claimed.message)
        except SendError as error:
            _record_error(connection, claimed.row_id, *_failure(error, claimed.redact))
            return _outcome(claimed, error)
        connection.execute(CHANGE_ROW, self._sent(claimed, message_id, now))
        return StepResult(claimed.step, EmailStatus.SENT)

    def _send_to_provider(self, claimed: _Claimed, now: datetime) -> StepResult | _Retry:
        try:
            message_id = self.sender.send(None, claimed.row_id, claimed.message)
        except SendError as error:
            status, text = _failure(error, claimed.redact)
            with self.engine.begin() as connection:
                if _may_have_reached_provider(error):
                    connection.execute(RECORD_UNCONFIRMED,
                                       {"row_id": claimed.row_id, "last_error": text})
                else:
                    _record_error(connection, claimed.row_id, status, text)
            return _outcome(claimed, error)
        self._confirm_sent(claimed, message_id, now)
        return StepResult(claimed.step, EmailStatus.SENT)

    def _context(self, req: SendStep, purchase: AnyRow, unsubscribe: str) -> dict[str, Any]:
        creator = purchase.creator_code
        return build_context(
            step=req.step,
            shop=self.renderer.shop(req.shop_id),
            customer={"first_name": purchase.first_name, "locale": purchase.locale},
            order={
                "id": req.order_id,
                "total": purchase.total,
                "currency": purchase.currency,
                "placed_at": purchase.placed_at.isoformat(),
                "items": purchase.items,
            },
            products=self.renderer.products(),
            referral_code=purchase.referral_code,
            creator={"name": purchase.creator_name, "code": creator} if creator else None,
            unsubscribe=unsubscribe,
            public_url=self.identity.public_url,
        )

    def _message(self, req: SendStep, purchase: AnyRow, rendered: Rendered) -> Message:
        return Message(
            to_email=purchase.email or "",
            to_name=purchase.first_name,
            from_email=self.identity.from_email,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            idempotency_key=req.key,
            categories=(req.step, f"{SHOP_CATEGORY}{req.shop_id}"),
            list_unsubscribe=unsubscribe_url(self.identity.public_url, self.identity.link_secret,
                                             req.shop_id, purchase.customer_id),
            shop_id=req.shop_id,
        )

    def _sent(self, claimed: _Claimed, message_id: str, now: datetime) -> dict[str, Any]:
        rendered = claimed.rendered
        return {
            "row_id": claimed.row_id,
            "status": "sent",
            "provider": self.sender.name,
            "template_name": rendered.template_name,
            "template_hash": rendered.template_hash,
            "subject": rendered.subject,
            "provider_message_id": message_id,
            "sent_at": now,
            "last_error": None,
        }

    def _confirm_sent(self, claimed: _Claimed, message_id: str, now: datetime) -> None:
        """Record SendGrid's 202. A failure here would make the activity retry and send again,
        so a dropped database connection gets a few more tries first."""
        for attempt in range(CONFIRM_ATTEMPTS):
            try:
                with self.engine.begin() as connection:
                    connection.execute(CHANGE_ROW, self._sent(claimed, message_id, now))
                return
            except DBAPIError:
                if attempt == CONFIRM_ATTEMPTS - 1:
                    raise
                time.sleep(0.5 * 2**attempt)


class _StepRow:
    """This lifecycle's row for the step: added on its first write, changed after."""

    def __init__(
        self, connection: Connection, req: SendStep, purchase: AnyRow, found: AnyRow | None
    ) -> None:
        self.connection = connection
        self.req = req
        self.purchase = purchase
        self.id: int | None = found.id if found is not None else None

    def write(self, **values: Any) -> int:
        if self.id is not None:
            self.connection.execute(CHANGE_ROW, {"row_id": self.id, **values})
            return self.id
        req = self.req
        self.id = self.connection.execute(ADD_ROW, {
            "idempotency_key": req.key,
            "workflow_id": req.workflow_id,
            "shop_id": req.shop_id,
            "order_id": req.order_id,
            "customer_id": self.purchase.customer_id,
            "step": req.step,
            "skus": skus_of(self.purchase.items),
            "marketing": req.marketing,
            "attempts": 0,
            **values,
        }).scalar_one()
        return self.id


@dataclass(frozen=True)
class _Claimed:
    """A step decided to go out: its row `sending`, its message rendered."""

    row_id: int
    step: str
    rendered: Rendered
    message: Message
    redact: Redactor


@dataclass(frozen=True)
class _Retry:
    """A failure a retry can mend: a template being fixed, a provider that is down."""

    kind: str
    error: str


Outcome = StepResult | _Claimed | _Retry


def _record_error(connection: Connection, row_id: int, status: str, error: str) -> None:
    connection.execute(RECORD_ERROR, {"row_id": row_id, "status": status,
                                      "last_error": error[:2000]})


def _redactor(purchase: AnyRow, unsubscribe: str) -> Redactor:
    """Everything personal (or secret: the signed unsubscribe link) a template or a provider
    could quote back in an error."""
    return Redactor([purchase.email, purchase.first_name, purchase.creator_name, unsubscribe])


def _failure(error: SendError, redact: Redactor) -> tuple[str, str]:
    """The row's status and error text after the provider said no (its answer may echo the
    recipient)."""
    status = "failing" if error.retryable else "failed"
    return status, redact(f"provider {error.status}: {error}")[:2000]


def _may_have_reached_provider(error: SendError) -> bool:
    """Whether SendGrid may have taken a request that failed: it went out whole and no answer
    came back (a timeout, a reset or closed connection). urllib wraps in URLError only what
    fails before the request is written (refused, unresolvable, cut while writing), and an
    HTTP status is SendGrid's own answer."""
    return (
        error.retryable
        and error.status is None
        and not isinstance(error.__cause__, urllib.error.URLError)
    )


def _outcome(claimed: _Claimed, error: SendError) -> StepResult | _Retry:
    if error.retryable:
        return _Retry("ProviderUnavailable", claimed.redact(str(error)))
    return StepResult(claimed.step, EmailStatus.FAILED, f"provider_rejected_{error.status}")


def _skip_reason(req: SendStep, purchase: AnyRow, others: list[AnyRow]) -> str | None:
    """Why this step must not go out, from the customer's row and other lifecycles' sends."""
    if purchase.erased_at is not None or not purchase.email:
        return "customer_erased"
    if purchase.refunded_amount > 0 and req.idempotency_key is None:
        return "order_refunded"
    if req.marketing and purchase.unsubscribed_at is not None:
        return "unsubscribed"
    if req.marketing and purchase.suppressed_for is not None:
        return f"suppressed_{purchase.suppressed_for}"  # SendGrid reported it (docs/email.md)
    if req.marketing and not purchase.marketing_consent:
        return "no_marketing_consent"
    if req.idempotency_key is not None:
        return None  # a resend is on purpose: support asked for it
    checked_at = activity.info().current_attempt_scheduled_time
    confirmed = [
        other.skus
        for other in others
        if other.status == "sent"
        or other.decided_at is None
        or checked_at - other.decided_at > CLAIM_WAIT
    ]
    skus = skus_of(purchase.items)
    if reason := _covered(req, skus, confirmed):
        return reason
    if _covered(req, skus, [other.skus for other in others]):
        # Another lifecycle has it with the provider: decide once that send is settled, so a
        # send that fails, or is stopped, does not leave this customer without the email.
        raise ApplicationError(
            f"{req.step} for this customer is with the provider for another lifecycle",
            type="ClaimUnconfirmed",
        )
    return None


def _deferred_until(connection: Connection, req: SendStep, purchase: AnyRow) -> datetime | None:
    """The send hour a marketing email waits for when the customer had another within the
    frequency cap (from any of their lifecycles); None when it may go now. Decided holding the
    customer's row, so two lifecycles' emails cannot both pass the cap."""
    cap = req.frequency_cap
    if cap is None:
        return None
    claimed, sent = connection.execute(LAST_MARKETING, {
        "shop_id": req.shop_id, "customer_id": purchase.customer_id, "key": req.key,
    }).one()
    last = max((at for at in (claimed, sent) if at is not None), default=None)
    if last is None:
        return None
    allowed_from = last + timedelta(seconds=cap.seconds)
    if activity.info().current_attempt_scheduled_time >= allowed_from:
        return None
    return next_send_hour(
        allowed_from, purchase.placed_at, purchase.timezone, cap.send_hour, cap.day_seconds
    )


def _covered(req: SendStep, skus: list[str], earlier: list[list[str]]) -> str | None:
    """Why other lifecycles' sends of this step (their SKUs) make this one unneeded."""
    if req.once_per == "customer" and earlier:
        return "already_sent_to_customer"
    covered = {sku for skus in earlier for sku in skus}
    if req.once_per == "product" and set(skus) <= covered:
        return "already_onboarded_for_products"
    return None
