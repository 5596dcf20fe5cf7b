"""Activities on the app database: attribution, the credit ledger, the closing summary.

Every method runs in one transaction, and the ledger's unique keys make a retry find the
effect of the attempt before it instead of repeating it. Times come from the workflow's clock
(`now`), so the ledger agrees with the lifecycle even under a time-skipping test server.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import without_personal_data
from activities.schedule import days, long_past, step_due_at
from database.models import Credit, Customer, EmailSend, Purchase, skus_of
from database.session import AnyRow, engine_of, lock_for_decision
from database.upsert import InsertNew
from ledger import credits, referrals
from workflows.contract import (
    ApproveCredits,
    Attribution,
    BeginLifecycle,
    CreditMilestones,
    CreditRecorded,
    LifecyclePlan,
    LifecycleSummary,
    ReverseOrderCredits,
    StepDue,
    SummarizeLifecycle,
)
from workflows.state import CREDITED

# Every lifecycle runs these, so they are prepared Core statements (compiled once, cached), as
# the intake's are, not the ORM's unit of work.
PURCHASE = (
    select(
        Purchase.placed_at, Purchase.currency, Purchase.referral_code, Purchase.attribution,
        Purchase.items, Purchase.created_at.label("reported_at"),
        Purchase.referrer_code, Customer.id.label("customer_pk"), Customer.customer_id,
        Customer.timezone, Customer.email_normalized,
        Customer.referral_code.label("own_referral_code"),
    )
    .join(Customer, Purchase.customer_pk == Customer.id)
    .where(Purchase.shop_id == bindparam("shop_id"), Purchase.order_id == bindparam("order_id"))
)
BEGIN = (
    update(Purchase)
    .where(Purchase.shop_id == bindparam("shop"), Purchase.order_id == bindparam("order"))
    .values(
        # the intake only stores and starts; this is the proof the lifecycle runs
        lifecycle_started_at=func.coalesce(Purchase.lifecycle_started_at, bindparam("now")),
        attribution=bindparam("kind"),
        referrer_code=bindparam("referrer"),
        window_closes_at=bindparam("closes"),
    )
)
STOPPED_SENDS = (
    update(EmailSend)
    .where(
        EmailSend.workflow_id == bindparam("lifecycle"),
        EmailSend.status.in_(("pending", "failing", "deferred")),
    )
    .values(status="skipped", skip_reason=bindparam("reason"))
)
# A step skipped before its send: its row is the one `send_step` would write under the same
# key, and finds decided.
SKIP_STEP = InsertNew(EmailSend, [EmailSend.idempotency_key], EmailSend.id)
EMAILS = select(EmailSend.status, EmailSend.skip_reason).where(
    EmailSend.workflow_id == bindparam("workflow_id")
)
CREDITS = select(Credit.status).where(Credit.workflow_id == bindparam("workflow_id"))
# The refund's locks, in its order (intake/service.py: _store_refund).
LOCK_CUSTOMER_OF = (
    select(Customer.id)
    .join(Purchase, Purchase.customer_pk == Customer.id)
    .where(Purchase.shop_id == bindparam("shop_id"), Purchase.order_id == bindparam("order_id"))
    .with_for_update(of=Customer)
)
REFUNDED = (
    select(Purchase.refunded_amount > 0)
    .where(Purchase.shop_id == bindparam("shop_id"), Purchase.order_id == bindparam("order_id"))
    .with_for_update(of=Purchase)
)
ATTRIBUTION = select(Purchase.attribution).where(Purchase.workflow_id == bindparam("workflow_id"))


def load_purchase(connection: Connection, shop_id: str, order_id: str) -> AnyRow:
    purchase = connection.execute(PURCHASE, {"shop_id": shop_id, "order_id": order_id}).first()
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
    connection: Connection,
    purchase: AnyRow,
    req: BeginLifecycle | CreditMilestones,
    earned_by_order: str,
    referrer: credits.Referrer,
    milestones: list[str],
    now: datetime,
) -> list[CreditRecorded]:
    """The referrer's credits for these milestones, at the rules' rewards, each held."""
    rules = req.rules
    found = credits.record(
        connection,
        shop_id=req.shop_id,
        customer_id=purchase.customer_id,
        order_id=earned_by_order,
        workflow_id=req.workflow_id,
        referrer=referrer,
        amounts={m: Decimal(rules.reward(m)) for m in milestones},
        currency=purchase.currency,
        hold=days(rules, rules.hold_days),
        now=now,
    )
    return [CreditRecorded(c.id, c.milestone, c.approve_after) for c in found]


def _skip_long_past(
    connection: Connection, req: BeginLifecycle, purchase: AnyRow, steps: list[StepDue],
    now: datetime,
) -> None:
    rows = [
        {"idempotency_key": f"{req.workflow_id}:{step.step}", "workflow_id": req.workflow_id,
         "shop_id": req.shop_id, "order_id": req.order_id, "customer_id": purchase.customer_id,
         "step": step.step, "skus": skus_of(purchase.items), "status": "skipped",
         "skip_reason": "past_due_when_reported", "decided_at": now, "attempts": 0}
        for step in steps
        if long_past(step.due_at, purchase.reported_at, req.rules)
    ]
    if rows:
        connection.execute(SKIP_STEP(connection), rows)


class PurchaseActivities:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.engine = engine_of(sessions)

    @activity.defn
    @without_personal_data
    def begin_lifecycle(self, req: BeginLifecycle) -> LifecyclePlan:
        """Attribute the purchase, give the customer a referral code, credit the referral, and
        skip the steps long past when it was reported (a backfilled order)."""
        now = req.now
        rules = req.rules
        with self.engine.begin() as connection:
            purchase = load_purchase(connection, req.shop_id, req.order_id)
            if purchase.own_referral_code is None:
                referrals.give_referral_code(connection, purchase.customer_pk)
            attribution, referrer_code = purchase.attribution, purchase.referrer_code
            if attribution is None:
                buyer = referrals.Buyer(
                    req.shop_id, purchase.customer_pk, purchase.email_normalized
                )
                found = referrals.resolve(connection, buyer, purchase.referral_code)
                attribution, referrer_code = found.kind, found.referrer_code
            window_closes_at = purchase.placed_at + days(rules, rules.attribution_window_days)
            connection.execute(BEGIN, {
                "shop": req.shop_id, "order": req.order_id, "now": now, "kind": attribution,
                "referrer": referrer_code, "closes": window_closes_at,
            })
            recorded = []
            if attribution in CREDITED and referrer_code:
                referrer = credits.Referrer(attribution, referrer_code)
                recorded = _credit(
                    connection, purchase, req, req.order_id, referrer, ["referral"], now
                )
            steps = [
                StepDue(
                    rule.step,
                    step_due_at(purchase.placed_at, rule.day, purchase.timezone, rules),
                    rule.marketing,
                    rule.once_per,
                )
                for rule in rules.steps
            ]
            _skip_long_past(connection, req, purchase, steps, now)
        return LifecyclePlan(
            customer_id=purchase.customer_id,
            referrer_code=referrer_code,
            attribution=Attribution(attribution or Attribution.NONE),
            steps=sorted(steps, key=lambda s: s.due_at),
            window_closes_at=window_closes_at,
            credits=recorded,
        )

    @activity.defn
    @without_personal_data
    def credit_milestones(self, req: CreditMilestones) -> list[CreditRecorded]:
        """Credit what a repeat purchase earned. Its refund may have landed first (the signal
        waited in the lifecycle's inbox while a send waited on SendGrid): the refund's own
        reversal then ran before these credits existed, so they are reversed here, as it
        would have reversed them. The repeat's rows are locked in the refund's order (customer,
        then purchase), so a refund either committed before this read or waits for it and
        finds the credits."""
        now = req.now
        referrer = credits.Referrer(req.referrer_kind, req.referrer_code)
        with self.sessions.begin() as session:
            connection = session.connection()
            lock_for_decision(connection)
            connection.execute(LOCK_CUSTOMER_OF, {"shop_id": req.shop_id,
                                                  "order_id": req.earned_by_order})
            refunded = connection.execute(REFUNDED, {"shop_id": req.shop_id,
                                                     "order_id": req.earned_by_order}).scalar()
            purchase = load_purchase(connection, req.shop_id, req.order_id)
            recorded = _credit(
                connection, purchase, req, req.earned_by_order, referrer, req.milestones, now
            )
            if refunded:
                credits.reverse_order(session, req.shop_id, req.earned_by_order, now)
            return recorded

    @activity.defn
    @without_personal_data
    def approve_credits(self, req: ApproveCredits) -> int:
        with self.engine.begin() as connection:
            return credits.approve(connection, req.credit_ids, req.now)

    @activity.defn
    @without_personal_data
    def reverse_order_credits(self, req: ReverseOrderCredits) -> list[int]:
        """Returns the ids of the credits the refund touched (reversed or clawed back)."""
        with self.sessions.begin() as session:
            now = req.now
            changed = credits.reverse_order(session, req.shop_id, req.order_id, now)
            return [c.reverses_credit_id or c.id for c in changed]

    @activity.defn
    @without_personal_data
    def summarize_lifecycle(self, req: SummarizeLifecycle) -> LifecycleSummary:
        key = {"workflow_id": req.workflow_id}
        with self.engine.begin() as connection:
            if req.stopped:
                # A send the stop interrupted (waiting on its retry, or deferred by the
                # frequency cap) will not go out: say why, instead of leaving it `failing`.
                # One already handed to SendGrid stays as it is.
                connection.execute(STOPPED_SENDS, {
                    "lifecycle": req.workflow_id, "reason": f"lifecycle_{req.stopped}"
                })
            emails = connection.execute(EMAILS, key).all()
            statuses = connection.execute(CREDITS, key).scalars().all()
            attribution = connection.execute(ATTRIBUTION, key).scalar()
        return LifecycleSummary(
            emails_sent=sum(1 for status, _ in emails if status == "sent"),
            emails_skipped=dict(
                Counter(reason or "" for status, reason in emails if status == "skipped")
            ),
            emails_failed=sum(1 for status, _ in emails if status == "failed"),
            credits=dict(Counter(statuses)),
            attribution=Attribution(attribution or Attribution.NONE),
        )
