"""The email step: decide send or skip, render at send time, send once.

The decision is made in one transaction holding the customer's row, so an erasure, an
unsubscribe or another lifecycle's once-per-customer send either landed before it (and is seen)
or waits for it (and sees this email claimed). The outbox writes the message in that same
transaction, which marks the step sent: exactly once, one commit. With SendGrid the transaction
leaves the row `sending`, the request goes out, and a second one records the 202. SendGrid has
no idempotency key, so two gaps remain, measured by the fault suite (docs/testing.md): the
worker dying between SendGrid's 202 and our commit, and a 202 arriving after our client timed
out. A dropped database connection at that commit is retried in place rather than resending.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, contains_eager, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.purchases import purchase_not_found
from database.models import Creator, Customer, EmailSend, Purchase
from messages.context import build_context, unsubscribe_url
from messages.render import Rendered, TemplateProblem, TemplateRenderer
from messages.senders import Message, Sender, SendError
from workflows.contract import SendStep, StepResult

DONE = ("sent", "skipped")
# Sent, or handed to the provider and not yet confirmed: either counts as "sent before".
CLAIMED = ("sent", "sending")
CONFIRM_ATTEMPTS = 4
# How long another lifecycle's unconfirmed send of a once-per step makes this one wait; after
# it, the claim counts as sent (its lifecycle may have stopped with the request out).
CLAIM_WAIT = timedelta(minutes=2)


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
    ) -> None:
        self.sessions = sessions
        self.renderer = renderer
        self.sender = sender
        self.identity = identity

    @activity.defn
    def send_step(self, req: SendStep) -> StepResult:
        now = datetime.fromisoformat(req.now)
        with self.sessions.begin() as session:
            outcome = self._claim(session, req, now)
            if isinstance(outcome, _Claimed) and self.sender.name == "outbox":
                outcome = self._keep_in_outbox(session, outcome, now)
        if isinstance(outcome, _Claimed):
            outcome = self._send_to_provider(outcome, now)
        if isinstance(outcome, _Retry):
            raise ApplicationError(outcome.error, type=outcome.kind)
        return outcome

    def _claim(self, session: Session, req: SendStep, now: datetime) -> Outcome:
        """Decide, holding the customer's row: done before, skipped, or rendered and claimed."""
        purchase, creator = _locked_purchase(session, req)
        # This step's rows for this customer: this lifecycle's own (by key) and other
        # lifecycles' sends that may make it unneeded.
        rows = session.scalars(
            select(EmailSend)
            .where(
                EmailSend.shop_id == req.shop_id,
                EmailSend.customer_id == purchase.customer.customer_id,
                EmailSend.step == req.step,
            )
            .with_for_update()
        ).all()
        row = next((r for r in rows if r.idempotency_key == req.key), None)
        if row is not None and row.status in DONE:
            return StepResult(req.step, row.status, row.skip_reason)
        row = row or _new_row(req, purchase)
        session.add(row)
        others = [r for r in rows if r.workflow_id != req.workflow_id and r.status in CLAIMED]
        reason = _skip_reason(req, purchase, others)
        if reason:
            row.status, row.skip_reason, row.decided_at = "skipped", reason, now
            return StepResult(req.step, "skipped", reason)
        row.attempts += 1
        parts = self._context(req, purchase, creator)
        try:
            rendered = self.renderer.render(
                req.step, parts.context, locale=parts.locale, skus=purchase.skus
            )
        except TemplateProblem as problem:
            # Kept failing with the error for the marketer; the retry renders again.
            row.status, row.last_error = "failing", f"template: {problem}"[:2000]
            return _Retry("TemplateError", str(problem))
        # Claimed while holding the customer's row: another lifecycle deciding a
        # once-per-customer step now sees this one on its way.
        row.status, row.decided_at = "sending", activity.info().current_attempt_scheduled_time
        return _Claimed(row, rendered, parts.message(rendered, req))

    def _keep_in_outbox(
        self, session: Session, claimed: _Claimed, now: datetime
    ) -> StepResult | _Retry:
        """The outbox keeps the message in the claiming transaction: kept exactly when the step
        is recorded sent."""
        row = claimed.row
        try:
            message_id = self.sender.send(session, row, claimed.message)
        except SendError as error:
            row.status, row.last_error = _failure(error)
            return _outcome(row.step, error)
        self._mark_sent(row, claimed.rendered, message_id, now)
        return StepResult(row.step, "sent")

    def _send_to_provider(self, claimed: _Claimed, now: datetime) -> StepResult | _Retry:
        row_id, step = claimed.row.id, claimed.row.step
        try:
            message_id = self.sender.send(None, claimed.row, claimed.message)
        except SendError as error:
            self._record_error(row_id, *_failure(error))
            return _outcome(step, error)
        self._confirm_sent(row_id, claimed.rendered, message_id, now)
        return StepResult(step, "sent")

    def _context(self, req: SendStep, purchase: Purchase, creator: Creator | None) -> _MessageParts:
        customer: Customer = purchase.customer
        context = build_context(
            step=req.step,
            shop=self.renderer.shop(purchase.shop_id),
            customer={"first_name": customer.first_name, "locale": customer.locale},
            order={
                "id": purchase.order_id,
                "total": purchase.total,
                "currency": purchase.currency,
                "placed_at": purchase.placed_at.isoformat(),
                "items": purchase.items,
            },
            products=self.renderer.products(),
            referral_code=customer.referral_code,
            creator={"name": creator.name, "code": creator.code} if creator else None,
            unsubscribe=unsubscribe_url(
                self.identity.public_url,
                self.identity.link_secret,
                purchase.shop_id,
                customer.customer_id,
            ),
        )
        return _MessageParts(
            context=context,
            locale=customer.locale,
            to_email=customer.email or "",
            to_name=customer.first_name,
            from_email=self.identity.from_email,
        )

    def _mark_sent(
        self, row: EmailSend, rendered: Rendered, message_id: str, now: datetime
    ) -> None:
        row.status = "sent"
        row.provider = self.sender.name
        row.decided_at = now
        row.template_name = rendered.template_name
        row.template_hash = rendered.template_hash
        row.subject = rendered.subject
        row.provider_message_id = message_id
        row.sent_at = now
        row.last_error = None

    def _confirm_sent(
        self, row_id: int, rendered: Rendered, message_id: str, now: datetime
    ) -> None:
        """Record SendGrid's 202. A failure here would make the activity retry and send again,
        so a dropped database connection gets a few more tries first."""
        for attempt in range(CONFIRM_ATTEMPTS):
            try:
                with self.sessions.begin() as session:
                    self._mark_sent(session.get_one(EmailSend, row_id), rendered, message_id, now)
                return
            except DBAPIError:
                if attempt == CONFIRM_ATTEMPTS - 1:
                    raise
                time.sleep(0.5 * 2**attempt)

    def _record_error(self, row_id: int, status: str, error: str) -> None:
        with self.sessions.begin() as session:
            row = session.get_one(EmailSend, row_id)
            if row.status not in DONE:
                row.status, row.last_error = status, error[:2000]


@dataclass(frozen=True)
class _Claimed:
    """A step decided to go out: its row `sending`, its message rendered."""

    row: EmailSend
    rendered: Rendered
    message: Message


@dataclass(frozen=True)
class _Retry:
    """A failure a retry can mend: a template being fixed, a provider that is down."""

    kind: str
    error: str


Outcome = StepResult | _Claimed | _Retry


def _failure(error: SendError) -> tuple[str, str]:
    """The row's status and error text after the provider said no."""
    return ("failing" if error.retryable else "failed"), f"provider {error.status}: {error}"[:2000]


def _outcome(step: str, error: SendError) -> StepResult | _Retry:
    if error.retryable:
        return _Retry("ProviderUnavailable", str(error))
    return StepResult(step, "failed", f"provider_rejected_{error.status}")


def _skip_reason(req: SendStep, purchase: Purchase, others: list[EmailSend]) -> str | None:
    """Why this step must not go out, from the customer's row and other lifecycles' sends."""
    customer = purchase.customer
    if customer.erased_at is not None or not customer.email:
        return "customer_erased"
    if purchase.refunded_amount > 0 and req.idempotency_key is None:
        return "order_refunded"
    if req.marketing and customer.unsubscribed_at is not None:
        return "unsubscribed"
    if req.marketing and not customer.marketing_consent:
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
    if reason := _covered(req, purchase, confirmed):
        return reason
    if _covered(req, purchase, [other.skus for other in others]):
        # Another lifecycle has it with the provider: decide once that send is settled, so a
        # send that fails, or is stopped, does not leave this customer without the email.
        raise ApplicationError(
            f"{req.step} for this customer is with the provider for another lifecycle",
            type="ClaimUnconfirmed",
        )
    return None


def _covered(req: SendStep, purchase: Purchase, earlier: list[list[str]]) -> str | None:
    """Why other lifecycles' sends of this step (their SKUs) make this one unneeded."""
    if req.once_per == "customer" and earlier:
        return "already_sent_to_customer"
    covered = {sku for skus in earlier for sku in skus}
    if req.once_per == "product" and set(purchase.skus) <= covered:
        return "already_onboarded_for_products"
    return None


def _locked_purchase(session: Session, req: SendStep) -> tuple[Purchase, Creator | None]:
    """The purchase, with its customer's row locked (the one lock every send decision takes)
    and the creator it is attributed to, if any, for the message."""
    found = session.execute(
        select(Purchase, Creator)
        .join(Purchase.customer)
        .outerjoin(
            Creator,
            and_(Purchase.attribution == "creator", Creator.code == Purchase.referrer_code),
        )
        .options(contains_eager(Purchase.customer))
        .where(Purchase.shop_id == req.shop_id, Purchase.order_id == req.order_id)
        .with_for_update(of=Customer)
    ).first()
    if found is None:
        raise purchase_not_found(req.shop_id, req.order_id)
    purchase, creator = found
    return purchase, creator


def _new_row(req: SendStep, purchase: Purchase) -> EmailSend:
    return EmailSend(
        idempotency_key=req.key,
        workflow_id=req.workflow_id,
        shop_id=req.shop_id,
        order_id=req.order_id,
        customer_id=purchase.customer.customer_id,
        step=req.step,
        skus=purchase.skus,
        status="pending",
        attempts=0,
    )


@dataclass(frozen=True)
class _MessageParts:
    context: dict
    locale: str
    to_email: str
    to_name: str | None
    from_email: str

    def message(self, rendered: Rendered, req: SendStep) -> Message:
        return Message(
            to_email=self.to_email,
            to_name=self.to_name,
            from_email=self.from_email,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            idempotency_key=req.key,
            categories=(req.step, f"shop:{req.shop_id}"),
        )
