"""The email step: decide send or skip, render at send time, send once.

Send order: claim the step's row (keyed by its idempotency key), render, decide again holding
the customer's row (an erasure, an unsubscribe or another lifecycle's once-per-customer send may
have landed), send, mark sent. The outbox writes the message in the transaction that marks it
sent, so it is exactly-once. With SendGrid the row is `sending` while the request is out; SendGrid
has no idempotency key, so two gaps remain, measured by the fault suite (docs/testing.md): the
worker dying between SendGrid's 202 and our commit, and a 202 arriving after our client timed
out. A dropped database connection at the commit is retried in place rather than resending.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.purchases import load_purchase
from database.models import Creator, Customer, EmailSend, Purchase
from messages.context import build_context, unsubscribe_url
from messages.render import Rendered, TemplateProblem, TemplateRenderer
from messages.senders import Message, Sender, SendError
from workflows.contract import SendStep, StepResult

DONE = ("sent", "skipped")
# Sent, or handed to the provider and not yet confirmed: either counts as "sent before".
CLAIMED = ("sent", "sending")
CONFIRM_ATTEMPTS = 4


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
            row, purchase = self._claim(session, req)
            if row.status in DONE:
                return StepResult(req.step, row.status, row.skip_reason)
            reason = self._skip_reason(session, req, purchase)
            if reason:
                row.status, row.skip_reason, row.decided_at = "skipped", reason, now
                return StepResult(req.step, "skipped", reason)
            row.attempts += 1
            row_id = row.id
            message_parts = self._context(session, req, purchase)
        try:
            rendered = self.renderer.render(
                req.step, message_parts.context, locale=message_parts.locale, skus=purchase.skus
            )
            message = message_parts.message(rendered, req)
            with self.sessions.begin() as session:
                row = session.get_one(EmailSend, row_id, with_for_update=True)
                if row.status in DONE:
                    return StepResult(req.step, row.status, row.skip_reason)
                # An erasure or unsubscribe may have landed while we rendered: look again,
                # holding the customer's row, so it wins over a send that has not gone out.
                late = self._skip_reason(session, req, self._locked_purchase(session, req))
                if late:
                    row.status, row.skip_reason, row.decided_at = "skipped", late, now
                    return StepResult(req.step, "skipped", late)
                if self.sender.name == "outbox":
                    message_id = self.sender.send(session, row_id, message)
                    self._mark_sent(row, rendered, message_id, now)
                    return StepResult(req.step, "sent")
                # Claimed while holding the customer's row: another lifecycle deciding a
                # once-per-customer step now sees this one on its way.
                row.status = "sending"
            message_id = self.sender.send(session, row_id, message)
            self._confirm_sent(row_id, rendered, message_id, now)
            return StepResult(req.step, "sent")
        except TemplateProblem as problem:
            self._record_error(row_id, "failing", f"template: {problem}")
            raise ApplicationError(str(problem), type="TemplateError") from problem
        except SendError as error:
            status = "failing" if error.retryable else "failed"
            self._record_error(row_id, status, f"provider {error.status}: {error}")
            if error.retryable:
                raise ApplicationError(str(error), type="ProviderUnavailable") from error
            return StepResult(req.step, "failed", f"provider_rejected_{error.status}")

    @staticmethod
    def _locked_purchase(session: Session, req: SendStep) -> Purchase:
        purchase = load_purchase(session, req.shop_id, req.order_id)
        session.refresh(purchase.customer, with_for_update=True)
        return purchase

    def _claim(self, session: Session, req: SendStep) -> tuple[EmailSend, Purchase]:
        purchase = load_purchase(session, req.shop_id, req.order_id)
        row = session.scalar(
            select(EmailSend).where(EmailSend.idempotency_key == req.key).with_for_update()
        )
        if row is None:
            row = EmailSend(
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
            session.add(row)
            session.flush()
        return row, purchase

    def _skip_reason(self, session: Session, req: SendStep, purchase: Purchase) -> str | None:
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
        earlier = session.scalars(
            select(EmailSend.skus).where(
                EmailSend.shop_id == req.shop_id,
                EmailSend.customer_id == customer.customer_id,
                EmailSend.step == req.step,
                EmailSend.status.in_(CLAIMED),
                EmailSend.workflow_id != req.workflow_id,
            )
        ).all()
        if req.once_per == "customer" and earlier:
            return "already_sent_to_customer"
        covered = {sku for skus in earlier for sku in skus}
        if req.once_per == "product" and set(purchase.skus) <= covered:
            return "already_onboarded_for_products"
        return None

    def _context(self, session: Session, req: SendStep, purchase: Purchase) -> _MessageParts:
        customer: Customer = purchase.customer
        creator = None
        if purchase.attribution == "creator" and purchase.referrer_code:
            found = session.scalar(select(Creator).where(Creator.code == purchase.referrer_code))
            if found is not None:
                creator = {"name": found.name, "code": found.code}
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
            creator=creator,
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
