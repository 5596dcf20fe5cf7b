"""Dataclasses that cross the workflow boundary: inputs, signals, queries, activity I/O.

Only ids, codes, amounts (decimal strings), steps and times belong here: everything in these
classes is written to workflow history, and histories must hold no personal data. Times are
`datetime`s: the SDK's converter writes them as the ISO strings these fields held before, so
histories recorded then replay unchanged. Stages, attributions and email outcomes are `StrEnum`s
for the same reason: each is written as the string it was.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from workflows.rules import LifecycleRules


class Stage(StrEnum):
    """Where a lifecycle is; the `LifecycleStage` search attribute support filters on."""

    STARTING = "starting"
    RESUMED = "resumed"  # continued-as-new, before its first step
    ONBOARDING = "onboarding"
    WAITING_FOR_REPEATS = "waiting_for_repeats"
    HOLDING_CREDITS = "holding_credits"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


TERMINAL_STAGES = (Stage.COMPLETED, Stage.CANCELLED, Stage.REFUNDED)


class Attribution(StrEnum):
    """Who a purchase is credited to: a creator, an advocate (a customer's own code), or no one
    (a code used on oneself, an unknown code, none)."""

    CREATOR = "creator"
    CUSTOMER = "customer"
    SELF_REFERRAL = "self_referral"
    UNKNOWN_CODE = "unknown_code"
    NONE = "none"


class EmailStatus(StrEnum):
    """An email step's outcome (`email_send.status`), and the two answers that make it wait."""

    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"
    FAILING = "failing"
    SENDING = "sending"
    DEFERRED = "deferred"  # the frequency cap holds it until `deferred_until`
    UNCONFIRMED = "unconfirmed"  # SendGrid may have it; ask again until `resend_at`


@dataclass
class StepDue:
    step: str
    due_at: datetime
    marketing: bool = True
    once_per: str = "product"


@dataclass
class CreditRecorded:
    credit_id: int
    milestone: str
    approve_after: datetime


@dataclass
class LifecyclePlan:
    """The first activity's answer: who referred the purchase and when each step is due."""

    customer_id: str
    referrer_code: str | None
    attribution: Attribution
    steps: list[StepDue]
    window_closes_at: datetime
    credits: list[CreditRecorded] = field(default_factory=list)


@dataclass
class CarriedState:
    """What a lifecycle carries across continue-as-new."""

    plan: LifecyclePlan
    steps_done: dict[str, str] = field(default_factory=dict)
    seen_orders: list[str] = field(default_factory=list)
    milestones: list[str] = field(default_factory=list)
    pending_approvals: dict[int, datetime] = field(default_factory=dict)
    stopped: Stage | None = None
    unsubscribed: bool = False
    repeats: int = 0


@dataclass
class LifecycleInput:
    shop_id: str
    order_id: str
    rules: LifecycleRules = field(default_factory=LifecycleRules)
    email_task_queue: str = "loyalloop-emails"
    carried: CarriedState | None = None


@dataclass
class ResendRequest:
    """Support sends a step again on purpose, under a key of its own (the audit entry's)."""

    step: str
    idempotency_key: str


@dataclass
class RepeatPurchase:
    """Another order of the same customer; spend is the customer's cumulative total after it.
    `placed_at` decides whether it falls inside the attribution window, however late the
    lifecycle gets to it."""

    order_id: str
    amount: str
    cumulative_spend: str
    placed_at: datetime | None = None


@dataclass
class RefundRequest:
    refund_id: int
    amount: str


@dataclass
class BeginLifecycle:
    shop_id: str
    order_id: str
    workflow_id: str
    rules: LifecycleRules
    now: datetime


@dataclass
class FrequencyCap:
    """At most one marketing email per customer within `seconds` (lifecycle time); one over it
    waits for the next send hour, which `send_hour` and `day_seconds` place."""

    seconds: float
    send_hour: int
    day_seconds: int


@dataclass
class SendStep:
    shop_id: str
    order_id: str
    workflow_id: str
    step: str
    now: datetime
    marketing: bool = True
    once_per: str = "product"
    idempotency_key: str | None = None
    # The caller waits for the provider's confirmation of an earlier attempt's send (its row
    # still `sending`) before a resend; callers without it (older workflow code) resend at once.
    wait_if_unconfirmed: bool = False
    # None: no cap (support's resends, transactional steps, older workflow code).
    frequency_cap: FrequencyCap | None = None

    @property
    def key(self) -> str:
        return self.idempotency_key or f"{self.workflow_id}:{self.step}"


@dataclass
class StepResult:
    """`unconfirmed`: an earlier attempt's send may have reached the provider and is not
    confirmed yet; ask again later, and the step resends itself from `resend_at` on.
    `deferred`: the customer had a marketing email within the frequency cap; ask again at
    `deferred_until`, the next send hour after the cap."""

    step: str
    status: EmailStatus
    reason: str | None = None
    claimed_at: datetime | None = None
    resend_at: datetime | None = None
    deferred_until: datetime | None = None


@dataclass
class CreditMilestones:
    shop_id: str
    order_id: str
    workflow_id: str
    referrer_kind: Attribution
    referrer_code: str
    earned_by_order: str
    milestones: list[str]
    rules: LifecycleRules
    now: datetime


@dataclass
class ApproveCredits:
    credit_ids: list[int]
    now: datetime


@dataclass
class ReverseOrderCredits:
    shop_id: str
    order_id: str
    now: datetime


@dataclass
class SummarizeLifecycle:
    """`stopped` (cancelled, refunded) closes the emails a stop left unsent, with that reason."""

    workflow_id: str
    stopped: Stage | None = None


@dataclass
class LifecycleSummary:
    emails_sent: int
    emails_skipped: dict[str, int]
    emails_failed: int
    credits: dict[str, int]
    stage: Stage = Stage.COMPLETED
    # Who the purchase was credited to: `self_referral` says why a used code earned nothing.
    attribution: Attribution = Attribution.NONE


@dataclass
class LifecycleStatus:
    """`attribution` is `pending` until the first activity has resolved it."""

    stage: Stage
    steps_done: dict[str, str]
    next_step: str | None
    next_at: datetime | None
    referrer_code: str | None
    attribution: str
    repeats: int
    pending_approvals: int
    unsubscribed: bool
    stopped: Stage | None
    waiting_on: str | None = None
    # Why the send of `waiting_on` waits and until when: `provider_confirmation`, or
    # `frequency_cap` (deferred to the next send hour).
    waiting_for: str | None = None
    waiting_until: datetime | None = None
