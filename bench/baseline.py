"""The yardstick: the least a Temporal workflow needs to run the same lifecycle.

Same timers as the real one (steps at their days, a credit hold after each credit, the
attribution window), one activity per effect, and activities that do nothing. The gap between
this and `PurchaseLifecycle` is what Loyalloop's own design costs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow

TIMEOUT = timedelta(seconds=30)


@dataclass
class BaselineStep:
    step: str
    at_s: float


@dataclass
class BaselineInput:
    steps: list[BaselineStep] = field(default_factory=list)
    hold_s: float = 1.0
    window_s: float = 4.0


@dataclass
class BaselineRepeat:
    order_id: str
    amount: str
    cumulative_spend: str


@activity.defn(name="baseline_noop")
def noop(what: str) -> str:
    return what


@workflow.defn
class BaselineLifecycle:
    def __init__(self) -> None:
        self.repeat: BaselineRepeat | None = None

    @workflow.signal
    def repeat_purchase(self, repeat: BaselineRepeat) -> None:
        self.repeat = repeat

    @workflow.run
    async def run(self, input: BaselineInput) -> int:
        started = workflow.now()
        await self._effect("begin_lifecycle")
        credits = asyncio.gather(
            self._hold_and_approve(input.hold_s), self._credit_repeat(input)
        )
        done = 0
        for at_s in sorted({s.at_s for s in input.steps}):
            await self._sleep_until(started, at_s)
            for step in (s for s in input.steps if s.at_s == at_s):
                await self._effect(step.step)
                done += 1
        await self._sleep_until(started, input.window_s)
        await credits
        await self._effect("summarize_lifecycle")
        return done

    async def _credit_repeat(self, input: BaselineInput) -> None:
        await workflow.wait_condition(lambda: self.repeat is not None)
        await self._effect("credit_milestones")
        await self._hold_and_approve(input.hold_s)

    async def _hold_and_approve(self, hold_s: float) -> None:
        await workflow.sleep(hold_s)
        await self._effect("approve_credits")

    async def _sleep_until(self, started, at_s: float) -> None:  # type: ignore[no-untyped-def]
        left = (started + timedelta(seconds=at_s) - workflow.now()).total_seconds()
        if left > 0:
            await workflow.sleep(left)

    async def _effect(self, what: str) -> None:
        await workflow.execute_activity(noop, what, start_to_close_timeout=TIMEOUT)
