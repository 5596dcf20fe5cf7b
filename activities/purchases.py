"""Activities on the app database: attribution, the credit ledger, the closing summary.

Every method runs in one transaction, and the ledger's unique keys make a retry find the
effect of the attempt before it instead of repeating it. Times come from the workflow's clock
(`now`), so the ledger agrees with the lifecycle even under a time-skipping test server.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.schedule import days, step_due_at
from database.models import Credit, EmailSend, Purchase
from ledger import credits, referrals
from workflows.contract import (
    ApproveCredits,
    BeginLifecycle,
    CreditMilestones,
    CreditRecorded,
    LifecyclePlan,
    LifecycleSummary,
    ReverseOrderCredits,
    StepDue,
    SummarizeLifecycle,
)
from workflows.rules import LifecycleRules


def load_purchase(session: Session, shop_id: str, order_id: str) -> Purchase:
    purchase = session.scalar(
        select(Purchase).where(Purchase.shop_id == shop_id, Purchase.order_id == order_id)
    )
    if purchase is None:
        raise purchase_not_found(shop_id, order_id)
    return purchase


def purchase_not_found(shop_id: str, order_id: str) -> ApplicationError:
    return ApplicationError(
        f"purchase {shop_id}/{order_id} is not in the database",
        type="PurchaseNotFound",
        non_retryable=True,
    )


def _credit(
    session: Session,
    purchase: Purchase,
    order_id: str,
    workflow_id: str,
    referrer_kind: str,
    referrer_code: str,
    milestones: list[str],
    rules: LifecycleRules,
    now: datetime,
) -> list[CreditRecorded]:
    """The referrer's credits for these milestones, at the rules' rewards, each held."""
    found = credits.record(
        session,
        purchase=purchase,
        order_id=order_id,
        workflow_id=workflow_id,
        referrer_kind=referrer_kind,
        referrer_code=referrer_code,
        amounts={m: Decimal(rules.reward(m)) for m in milestones},
        hold=days(rules, rules.hold_days),
        now=now,
    )
    return [CreditRecorded(c.id, c.milestone, c.approve_after.isoformat()) for c in found]


class PurchaseActivities:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    @activity.defn
    def begin_lifecycle(self, req: BeginLifecycle) -> LifecyclePlan:
        """Attribute the purchase, give the customer a referral code, credit the referral."""
        now = datetime.fromisoformat(req.now)
        rules = req.rules
        with self.sessions.begin() as session:
            purchase = load_purchase(session, req.shop_id, req.order_id)
            # the intake only stores and starts; this is the proof the lifecycle runs
            purchase.lifecycle_started_at = purchase.lifecycle_started_at or now
            customer = purchase.customer
            referrals.ensure_referral_code(session, customer)
            if purchase.attribution is None:
                found = referrals.resolve(session, customer, purchase.referral_code)
                purchase.attribution, purchase.referrer_code = found.kind, found.referrer_code
            purchase.window_closes_at = purchase.placed_at + days(
                rules, rules.attribution_window_days
            )
            recorded = []
            if purchase.attribution in ("creator", "customer") and purchase.referrer_code:
                recorded = _credit(
                    session,
                    purchase,
                    purchase.order_id,
                    req.workflow_id,
                    purchase.attribution,
                    purchase.referrer_code,
                    ["referral"],
                    rules,
                    now,
                )
            steps = [
                StepDue(
                    rule.step,
                    step_due_at(purchase.placed_at, rule.day, customer.timezone, rules).isoformat(),
                    rule.marketing,
                    rule.once_per,
                )
                for rule in rules.steps
            ]
            return LifecyclePlan(
                customer_id=customer.customer_id,
                referrer_code=purchase.referrer_code,
                attribution=purchase.attribution or "none",
                steps=sorted(steps, key=lambda s: s.due_at),
                window_closes_at=purchase.window_closes_at.isoformat(),
                credits=recorded,
            )

    @activity.defn
    def credit_milestones(self, req: CreditMilestones) -> list[CreditRecorded]:
        now = datetime.fromisoformat(req.now)
        with self.sessions.begin() as session:
            purchase = load_purchase(session, req.shop_id, req.order_id)
            return _credit(
                session,
                purchase,
                req.earned_by_order,
                req.workflow_id,
                req.referrer_kind,
                req.referrer_code,
                req.milestones,
                req.rules,
                now,
            )

    @activity.defn
    def approve_credits(self, req: ApproveCredits) -> int:
        with self.sessions.begin() as session:
            return credits.approve(session, req.credit_ids, datetime.fromisoformat(req.now))

    @activity.defn
    def reverse_order_credits(self, req: ReverseOrderCredits) -> list[int]:
        """Returns the ids of the credits the refund touched (reversed or clawed back)."""
        with self.sessions.begin() as session:
            now = datetime.fromisoformat(req.now)
            changed = credits.reverse_order(session, req.shop_id, req.order_id, now)
            return [c.reverses_credit_id or c.id for c in changed]

    @activity.defn
    def summarize_lifecycle(self, req: SummarizeLifecycle) -> LifecycleSummary:
        with self.sessions.begin() as session:
            if req.stopped:
                # A send the stop interrupted (waiting on its retry) will not go out: say why,
                # instead of leaving it `failing`. One already handed to SendGrid stays as it is.
                session.execute(
                    update(EmailSend)
                    .where(
                        EmailSend.workflow_id == req.workflow_id,
                        EmailSend.status.in_(("pending", "failing")),
                    )
                    .values(status="skipped", skip_reason=f"lifecycle_{req.stopped}")
                )
            emails = session.execute(
                select(EmailSend.status, EmailSend.skip_reason).where(
                    EmailSend.workflow_id == req.workflow_id
                )
            ).all()
            statuses = session.scalars(
                select(Credit.status).where(Credit.workflow_id == req.workflow_id)
            ).all()
        return LifecycleSummary(
            emails_sent=sum(1 for status, _ in emails if status == "sent"),
            emails_skipped=dict(
                Counter(reason or "" for status, reason in emails if status == "skipped")
            ),
            emails_failed=sum(1 for status, _ in emails if status == "failed"),
            credits=dict(Counter(statuses)),
        )
