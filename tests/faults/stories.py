"""What the customers of the fault run do, and what each story must end with.

Each customer buys once through a creator's code, then one of six things happens. The shop
acts only after the app database shows the step it waits for (an unsubscribe or a cancel is
meant to land after day 1), so every story has one right ending whatever the faults do to
timing, except for a step already on its way when a stop lands, which may go out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.service import RPCError, RPCStatusCode

from database.models import Credit, EmailSend
from intake.store import workflow_id_for
from shop_events.schemas import PurchaseEvent, RefundEvent, UnsubscribeEvent
from tests.faults.chaos import CrashingIntake, Retries
from workflows.lifecycle import PurchaseLifecycle
from workflows.rules import LifecycleRules, StepRule

STEPS = ("day_1", "day_7", "referral_prompt", "day_21")
REPEAT_MILESTONES = ("first_repeat_purchase", "spend:100", "spend:250", "tier:silver")
KINDS = ("plain", "repeat", "refund_early", "unsubscribe", "cancel", "repeat_then_refund_it")
# Compressed to seconds. The repeat purchase is placed once the first lifecycle's day 1 is
# decided, which a killed worker can delay by a minute (an email activity times out after 60 s):
# the window is long enough for nearly every repeat to fall inside it (one that does not must
# earn nothing, and is checked so).
STORY_WAIT_S = 240.0
RULES = LifecycleRules(
    day_seconds=1,
    steps=[
        StepRule("day_1", 2),
        StepRule("day_7", 4),
        StepRule("referral_prompt", 4, once_per="customer"),
        StepRule("day_21", 6),
    ],
    attribution_window_days=100,
    hold_days=3,
)


class Watcher:
    """One reader polling the app database for every story (cut connections are retried)."""

    def __init__(self, sessions: sessionmaker[Session], shop_id: str) -> None:
        self.sessions = sessions
        self.shop_id = shop_id
        self.emails: dict[tuple[str, str], str] = {}
        self.credit_orders: dict[str, int] = {}
        self.changed = asyncio.Condition()

    def _read(self) -> tuple[dict[tuple[str, str], str], dict[str, int]]:
        with self.sessions() as session:
            emails = session.execute(
                select(EmailSend.order_id, EmailSend.step, EmailSend.status).where(
                    EmailSend.shop_id == self.shop_id
                )
            ).all()
            credits = session.scalars(
                select(Credit.order_id).where(Credit.shop_id == self.shop_id)
            ).all()
        counts: dict[str, int] = {}
        for order_id in credits:
            counts[order_id] = counts.get(order_id, 0) + 1
        return {(o, s): status for o, s, status in emails}, counts

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(DBAPIError):
                self.emails, self.credit_orders = await asyncio.to_thread(self._read)
            async with self.changed:
                self.changed.notify_all()
            await asyncio.sleep(0.5)

    async def until_decided(self, order_id: str, step: str) -> None:
        async with self.changed:
            await self.changed.wait_for(
                lambda: self.emails.get((order_id, step)) in ("sent", "skipped")
            )

    async def until_credited(self, order_id: str, count: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.credit_orders.get(order_id, 0) >= count)


@dataclass
class Story:
    index: int
    kind: str
    shop_id: str
    creator: str
    workflow_ids: list[str] = field(default_factory=list)
    began_at: float = 0.0  # wall clock, like every time the verdict compares
    repeated_at: float | None = None
    stopped_at: float | None = None
    stuck: str | None = None
    placed: dict[str, datetime] = field(default_factory=dict)

    @property
    def customer_id(self) -> str:
        return f"c-{self.index}"

    @property
    def first(self) -> str:
        return f"{self.index}-a"

    @property
    def repeat(self) -> str:
        return f"{self.index}-b"

    @property
    def lifecycles(self) -> int:
        return 2 if self.kind.startswith("repeat") else 1

    def purchase(self, order_id: str, total: str, sku: str, referral: str | None) -> PurchaseEvent:
        return PurchaseEvent.model_validate(
            {
                "shop_id": self.shop_id,
                "order_id": order_id,
                "placed_at": self.placed.setdefault(order_id, datetime.now(UTC)).isoformat(),
                "customer": {
                    "id": self.customer_id,
                    "email": f"{self.customer_id}@faults.example",
                    "first_name": "Zoë",
                    "locale": "en",
                    "timezone": "Europe/Lisbon",
                    "marketing_consent": True,
                },
                "items": [{"sku": sku, "name": sku, "quantity": 1, "unit_price": total}],
                "total": total,
                "currency": "EUR",
                **({"referral": {"code": referral}} if referral else {}),
            }
        )

    async def play(self, intake: CrashingIntake, shop: Retries, watcher: Watcher) -> None:
        first = self.purchase(self.first, "60.00", "KETTLE-1", self.creator)
        self.began_at = time.time()
        await shop(lambda: intake.accept_purchase(first))
        self.workflow_ids.append(workflow_id_for(self.shop_id, self.first))
        if self.kind == "refund_early":
            await self._refund(intake, shop, self.first, "60.00")
        elif self.kind == "unsubscribe":
            await self._until(watcher.until_decided(self.first, "day_1"), "day_1 of the first")
            event = UnsubscribeEvent(shop_id=self.shop_id, customer_id=self.customer_id)
            await shop(lambda: intake.accept_unsubscribe(event))
            self.stopped_at = time.time()
        elif self.kind == "cancel":
            await self._until(watcher.until_decided(self.first, "day_1"), "day_1 of the first")
            handle = intake.client.get_workflow_handle(self.workflow_ids[0])

            async def cancel() -> bool:
                try:
                    await handle.signal(PurchaseLifecycle.cancel)
                except RPCError as error:
                    if error.status != RPCStatusCode.NOT_FOUND:
                        raise
                    return False
                return True

            if await shop(cancel):
                self.stopped_at = time.time()
            else:
                # Day 1 was held up past every later step (an outage on a compressed day): the
                # lifecycle sent them all and closed before the shop could cancel. Nothing to stop.
                self.kind = "plain"
        elif self.kind.startswith("repeat"):
            await self._until(watcher.until_decided(self.first, "day_1"), "day_1 of the first")
            repeat = self.purchase(self.repeat, "250.00", "GRINDER-2", None)
            self.repeated_at = time.time()
            await shop(lambda: intake.accept_purchase(repeat))
            self.workflow_ids.append(workflow_id_for(self.shop_id, self.repeat))
            if self.kind == "repeat_then_refund_it":
                if self.repeat_in_window:
                    credited = watcher.until_credited(self.repeat, len(REPEAT_MILESTONES))
                    await self._until(credited, "the repeat's credits")
                await self._refund(intake, shop, self.repeat, "250.00")

    @property
    def repeat_in_window(self) -> bool:
        """Whether the repeat purchase was placed inside the first one's attribution window
        (on a machine loaded enough, day 1 can come later than that)."""
        window = timedelta(seconds=RULES.attribution_window_days * RULES.day_seconds)
        first, repeat = self.placed.get(self.first), self.placed.get(self.repeat)
        return first is not None and repeat is not None and repeat < first + window

    async def _until(self, condition: Awaitable[None], what: str) -> None:
        """Wait for what the shop acts on; a lost step must fail the run, not hang it."""
        try:
            await asyncio.wait_for(condition, STORY_WAIT_S)
        except TimeoutError:
            self.stuck = f"waited {STORY_WAIT_S:.0f} s for {what}"

    async def _refund(
        self, intake: CrashingIntake, shop: Retries, order_id: str, amount: str
    ) -> None:
        event = RefundEvent(
            shop_id=self.shop_id, order_id=order_id, amount=Decimal(amount), reason="returned"
        )
        await shop(lambda: intake.accept_refund(event))
        self.stopped_at = time.time()

    # What must be true at the end.

    @property
    def stopped_order(self) -> str | None:
        """The order a refund, unsubscribe or cancel stopped midway."""
        if self.kind == "repeat_then_refund_it":
            return self.repeat
        return self.first if self.kind in ("refund_early", "unsubscribe", "cancel") else None

    def must_send(self) -> dict[str, set[str]]:
        """Order → the steps whose email the customer must get, exactly once each. On the
        stopped order a step already on its way when the stop landed may go out too. A repeat
        buyer's referral prompt is checked per customer (`prompt_once`), as either lifecycle
        may be first to send it."""
        onboarding = {"day_1", "day_7", "day_21"}
        if self.kind in ("unsubscribe", "cancel"):
            return {self.first: {"day_1"}}
        if self.kind == "refund_early":
            return {self.first: set()}
        if self.kind == "repeat":
            return {self.first: onboarding, self.repeat: onboarding}
        if self.kind == "repeat_then_refund_it":
            return {self.first: onboarding, self.repeat: set()}
        return {self.first: set(STEPS)}

    @property
    def prompt_once(self) -> bool:
        return self.kind.startswith("repeat")

    def expected_stages(self) -> dict[str, set[str]]:
        """Order → how its lifecycle may end. A repeat order's lifecycle may have completed
        before its refund came (the refund then takes the credits back directly)."""
        stages = {"refund_early": "refunded", "cancel": "cancelled"}
        result = {self.first: {stages.get(self.kind, "completed")}}
        if self.kind == "repeat":
            result[self.repeat] = {"completed"}
        if self.kind == "repeat_then_refund_it":
            result[self.repeat] = {"refunded", "completed"}
        return result

    def check_credits(self, credits: list[Credit]) -> list[str]:
        """Problems with this customer's ledger entries (empty when right)."""
        by_milestone: dict[str, list[Credit]] = {}
        for credit in credits:
            by_milestone.setdefault(credit.milestone, []).append(credit)
        problems = [f"{m} recorded {len(c)} times" for m, c in by_milestone.items() if len(c) > 1]
        earned = ["referral"] + (list(REPEAT_MILESTONES) if self.repeat_in_window else [])
        reversed_orders = {"refund_early": self.first, "repeat_then_refund_it": self.repeat}
        refunded = reversed_orders.get(self.kind)
        for milestone in earned:
            entries = by_milestone.get(milestone)
            if not entries:
                problems.append(f"{milestone} lost")
                continue
            credit = entries[0]
            clawback = by_milestone.get(f"clawback:{milestone}")
            if credit.order_id == refunded:
                net = credit.amount * (credit.status != "reversed") + sum(
                    c.amount for c in clawback or []
                )
                if net != 0:
                    problems.append(f"{milestone} of refunded order {refunded} nets {net}")
            elif credit.status != "approved" or clawback:
                problems.append(f"{milestone} is {credit.status}, clawback {bool(clawback)}")
        extra = set(by_milestone) - set(earned) - {f"clawback:{m}" for m in earned}
        if extra:
            problems.append(f"unexpected credits {sorted(extra)}")
        return problems
