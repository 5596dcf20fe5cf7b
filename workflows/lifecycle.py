"""One purchase's lifecycle: onboarding emails, the referral prompt, repeat purchases, credits.

The workflow only orchestrates. Signal handlers record what arrived; the main loop acts on it,
sends the steps that are due, approves credits whose hold has passed, and sleeps until the next
thing is due. Everything it decides from comes from its input or from an activity's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.emails import EmailActivities
    from activities.purchases import PurchaseActivities
    from workflows import search
    from workflows import state as derived
    from workflows.contract import (
        ApproveCredits,
        BeginLifecycle,
        CarriedState,
        CreditMilestones,
        CreditRecorded,
        FrequencyCap,
        LifecycleInput,
        LifecycleStatus,
        LifecycleSummary,
        RefundRequest,
        RepeatPurchase,
        ResendRequest,
        ReverseOrderCredits,
        SendStep,
        Stage,
        StepDue,
        StepResult,
        SummarizeLifecycle,
    )
    from workflows.unconfirmed import next_check

In = TypeVar("In")
Out = TypeVar("Out")
DATABASE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["PurchaseNotFound"],
)
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=30),
    non_retryable_error_types=["PurchaseNotFound"],
)
DATABASE_TIMEOUT = timedelta(seconds=30)
SEND_TIMEOUT = timedelta(minutes=1)
REPEATS_BEFORE_CONTINUE_AS_NEW = 500
# Behaviour changes made while lifecycles are in flight (docs/testing.md: "Changing the workflow").
PATCH_REPEAT_WINDOW_BY_PLACED_AT = "repeat-window-by-placed-at"
PATCH_ACT_ON_LATE_SIGNALS = "act-on-signals-during-summary"
PATCH_LOCAL_DATABASE_STEPS = "database-steps-as-local-activities"
PATCH_WAIT_FOR_UNCONFIRMED_SEND = "wait-for-unconfirmed-send"
PATCH_FREQUENCY_CAP = "frequency-cap"
SEEN_ORDERS_KEPT = 1000


@workflow.defn
class PurchaseLifecycle:
    @workflow.init
    def __init__(self, input: LifecycleInput) -> None:
        self.input = input
        self.workflow_id = workflow.info().workflow_id
        carried = input.carried
        self.state: CarriedState | None = carried
        self.inbox: list[RepeatPurchase] = []
        self.resends: list[ResendRequest] = []
        self.refund_requested = False
        self.cancel_requested = False
        self.sending: str | None = None
        self.sending_waits_for: str | None = None
        self.sending_waits_until: datetime | None = None
        self.stage = Stage.STARTING if carried is None else Stage.RESUMED
        self.repeats_this_run = 0
        self.unsubscribed = carried.unsubscribed if carried else False

    # Handlers only record; the main loop acts.

    @workflow.signal
    def repeat_purchase(self, repeat: RepeatPurchase) -> None:
        self.inbox.append(repeat)

    @workflow.signal
    def refund(self, refund: RefundRequest) -> None:
        self.refund_requested = True

    @workflow.signal
    def unsubscribe(self) -> None:
        self.unsubscribed = True

    @workflow.signal
    def cancel(self) -> None:
        self.cancel_requested = True

    @workflow.signal
    def resend(self, request: ResendRequest) -> None:
        self.resends.append(request)

    @workflow.query
    def status(self) -> LifecycleStatus:
        state = self.state
        if state is None:
            return LifecycleStatus(
                self.stage, {}, None, None, None, "pending", 0, 0, self.unsubscribed, None
            )
        upcoming = derived.next_step(state)
        return LifecycleStatus(
            stage=self.stage,
            steps_done=dict(state.steps_done),
            next_step=upcoming.step if upcoming else None,
            next_at=upcoming.due_at if upcoming else None,
            referrer_code=state.plan.referrer_code,
            attribution=state.plan.attribution,
            repeats=state.repeats,
            pending_approvals=len(state.pending_approvals),
            unsubscribed=self.unsubscribed,
            stopped=state.stopped,
            waiting_on=self.sending,
            waiting_for=self.sending_waits_for,
            waiting_until=self.sending_waits_until,
        )

    @workflow.run
    async def run(self, input: LifecycleInput) -> LifecycleSummary:
        if self.state is None:
            plan = await self._database(
                PurchaseActivities.begin_lifecycle,
                BeginLifecycle(
                    input.shop_id, input.order_id, self.workflow_id, input.rules, workflow.now()
                ),
            )
            self.state = CarriedState(plan=plan)
            self._await_approval(plan.credits)
            if referrer := derived.credited_referrer(plan):
                workflow.upsert_search_attributes([search.CREATOR_CODE.value_set(referrer)])
        state = self.state

        while True:
            await self._orchestrate(input, state)
            await workflow.wait_condition(workflow.all_handlers_finished)
            final = state.stopped or Stage.COMPLETED
            self._set_stage(final)
            summary = await self._database(
                PurchaseActivities.summarize_lifecycle,
                SummarizeLifecycle(self.workflow_id, state.stopped),
            )
            # A refund or a repeat purchase that arrived while the summary ran is acted on, not
            # dropped: the server accepted the signal, so no one else will.
            if not (self._has_work() and workflow.patched(PATCH_ACT_ON_LATE_SIGNALS)):
                break
        summary.stage = final
        return summary

    async def _orchestrate(self, input: LifecycleInput, state: CarriedState) -> None:
        """Act on signals, send due steps and approve due credits until nothing is left to wait
        for; continue-as-new when the history grows long."""
        while True:
            if self.cancel_requested and state.stopped is None:
                state.stopped = Stage.CANCELLED
            await self._handle_refund()
            await self._handle_repeats()
            await self._handle_resends()
            await self._send_due_steps()
            await self._approve_due_credits()
            self._set_stage(derived.stage(state, workflow.now()))
            wake = derived.next_wake(state, workflow.now())
            if wake is None and not self._has_work():
                return
            if self._should_continue_as_new() and not self._has_work():
                await workflow.wait_condition(workflow.all_handlers_finished)
                state.unsubscribed = self.unsubscribed
                workflow.continue_as_new(
                    LifecycleInput(
                        input.shop_id,
                        input.order_id,
                        input.rules,
                        input.email_task_queue,
                        carried=state,
                    )
                )
            timeout = None if wake is None else max(wake - workflow.now(), timedelta(0))
            if timeout == timedelta(0):
                continue
            with contextlib.suppress(TimeoutError):  # woken by the clock, not a signal
                await workflow.wait_condition(self._has_work, timeout=timeout)

    # The main loop's steps.

    async def _handle_refund(self) -> None:
        state = self._state()
        if not self.refund_requested:
            return
        self.refund_requested = False
        state.stopped = Stage.REFUNDED
        touched = await self._database(
            PurchaseActivities.reverse_order_credits,
            ReverseOrderCredits(self.input.shop_id, self.input.order_id, workflow.now()),
        )
        for credit_id in touched:
            state.pending_approvals.pop(credit_id, None)

    async def _handle_repeats(self) -> None:
        state = self._state()
        while self.inbox:
            repeat = self.inbox.pop(0)
            if repeat.order_id in state.seen_orders or not self._credits_repeat(repeat):
                continue
            state.seen_orders = [*state.seen_orders, repeat.order_id][-SEEN_ORDERS_KEPT:]
            state.repeats += 1
            self.repeats_this_run += 1
            plan = state.plan
            if not plan.referrer_code:
                continue
            before = str(Decimal(repeat.cumulative_spend) - Decimal(repeat.amount))
            earned = ["first_repeat_purchase"]
            earned += self.input.rules.milestones_crossed(before, repeat.cumulative_spend)
            earned = [m for m in earned if m not in state.milestones]
            if not earned:
                continue
            recorded = await self._database(
                PurchaseActivities.credit_milestones,
                CreditMilestones(
                    shop_id=self.input.shop_id,
                    order_id=self.input.order_id,
                    workflow_id=self.workflow_id,
                    referrer_kind=plan.attribution,
                    referrer_code=plan.referrer_code,
                    earned_by_order=repeat.order_id,
                    milestones=earned,
                    rules=self.input.rules,
                    now=workflow.now(),
                ),
            )
            state.milestones = [*state.milestones, *earned]
            self._await_approval(recorded)

    async def _handle_resends(self) -> None:
        while self.resends:
            request = self.resends.pop(0)
            rule = next((s for s in self._state().plan.steps if s.step == request.step), None)
            await self._send(
                rule or StepDue(request.step, workflow.now()), request.idempotency_key
            )

    async def _send_due_steps(self) -> None:
        state = self._state()
        while (step := derived.next_step(state)) is not None and (
            step.due_at <= workflow.now()
        ):
            if self.refund_requested or self.cancel_requested:
                return
            outcome = await self._send(step, None)
            state.steps_done[step.step] = outcome

    async def _send(self, step: StepDue, idempotency_key: str | None) -> str:
        """Send one step, retried until it goes out or a person stops the lifecycle. A send an
        earlier attempt may have handed to SendGrid is waited for (durable timers, growing
        intervals) until its event confirms it or the step resends itself; one the frequency cap
        holds back waits for the send hour it was deferred to."""
        self.sending = step.step
        request = SendStep(
            shop_id=self.input.shop_id,
            order_id=self.input.order_id,
            workflow_id=self.workflow_id,
            step=step.step,
            now=workflow.now(),
            marketing=step.marketing,
            once_per=step.once_per,
            idempotency_key=idempotency_key,
            wait_if_unconfirmed=workflow.patched(PATCH_WAIT_FOR_UNCONFIRMED_SEND),
            frequency_cap=self._frequency_cap(step, idempotency_key),
        )
        result = await self._attempt(request)
        checks = 0
        while result is not None and (waiting := _waiting(result)) is not None:
            self.sending_waits_for, self.sending_waits_until = waiting
            if result.status == "unconfirmed":
                wait = next_check(workflow.now(), self.sending_waits_until, checks)
                checks += 1
            else:
                wait = max(self.sending_waits_until - workflow.now(), timedelta(seconds=1))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(self._stop_asked, timeout=wait)
            self.sending_waits_for = self.sending_waits_until = None
            if self._stop_asked():
                result = None
                break
            result = await self._attempt(dataclasses.replace(request, now=workflow.now()))
        self.sending = None
        if result is None:
            return "stopped"
        return result.status if result.reason is None else f"{result.status}:{result.reason}"

    def _frequency_cap(self, step: StepDue, idempotency_key: str | None) -> FrequencyCap | None:
        """The cap a scheduled marketing step is held to; support's resend is on purpose."""
        rules = self.input.rules
        if not step.marketing or idempotency_key is not None or rules.frequency_cap_hours <= 0:
            return None
        if not workflow.patched(PATCH_FREQUENCY_CAP):
            return None
        return FrequencyCap(rules.frequency_cap_seconds(), rules.send_hour, rules.day_seconds)

    async def _attempt(self, request: SendStep) -> StepResult | None:
        """One run of the email step with its retries; None when a stop cut it short."""
        handle = workflow.start_activity_method(
            EmailActivities.send_step,
            request,
            task_queue=self.input.email_task_queue,
            start_to_close_timeout=SEND_TIMEOUT,
            retry_policy=SEND_RETRY,
        )
        await workflow.wait_condition(lambda: handle.done() or self._stop_asked())
        if not handle.done():
            handle.cancel()
            try:
                await handle
            except (ActivityError, asyncio.CancelledError):
                return None
        return await handle

    def _stop_asked(self) -> bool:
        return self.refund_requested or self.cancel_requested

    async def _approve_due_credits(self) -> None:
        state = self._state()
        due = derived.due_credits(state, workflow.now())
        if not due:
            return
        await self._database(
            PurchaseActivities.approve_credits, ApproveCredits(due, workflow.now())
        )
        for credit_id in due:
            state.pending_approvals.pop(credit_id, None)

    async def _database(self, step: Callable[[PurchaseActivities, In], Out], arg: In) -> Out:
        """One short transaction on the app database. Since the patch it runs as a local
        activity: inside the worker's workflow task, so the server schedules no activity task and
        no workflow task for it (those were a third of a lifecycle's server work and history).
        Its effects are keyed as before, so a local retry, or a rerun after a worker died before
        its result was recorded, finds them instead of repeating them."""
        if workflow.patched(PATCH_LOCAL_DATABASE_STEPS):
            return await workflow.execute_local_activity_method(
                step, arg, start_to_close_timeout=DATABASE_TIMEOUT, retry_policy=DATABASE_RETRY
            )
        return await workflow.execute_activity_method(
            step, arg, start_to_close_timeout=DATABASE_TIMEOUT, retry_policy=DATABASE_RETRY
        )

    # The workflow's own state (derived state is workflows/state.py's).

    def _state(self) -> CarriedState:
        assert self.state is not None
        return self.state

    def _await_approval(self, recorded: list[CreditRecorded]) -> None:
        for credit in recorded:
            self._state().pending_approvals[credit.credit_id] = credit.approve_after

    def _credits_repeat(self, repeat: RepeatPurchase) -> bool:
        """Whether a repeat purchase counts: judged by when it was placed, not by when the
        lifecycle got to it (a dead worker or a failing provider may have held it up)."""
        if repeat.placed_at is None or not workflow.patched(PATCH_REPEAT_WINDOW_BY_PLACED_AT):
            return derived.counts_repeat(self._state(), workflow.now())
        return derived.counts_repeat(self._state(), repeat.placed_at)

    def _has_work(self) -> bool:
        stop_pending = self.cancel_requested and self._state().stopped is None
        return bool(self.inbox or self.resends or self.refund_requested or stop_pending)

    def _set_stage(self, stage: Stage) -> None:
        if stage != self.stage:
            self.stage = stage
            workflow.upsert_search_attributes([search.LIFECYCLE_STAGE.value_set(stage)])

    def _should_continue_as_new(self) -> bool:
        return (
            workflow.info().is_continue_as_new_suggested()
            or self.repeats_this_run >= REPEATS_BEFORE_CONTINUE_AS_NEW
        )


def _waiting(result: StepResult) -> tuple[str, datetime] | None:
    """What a step's answer makes its send wait for, and until when."""
    if result.status == "unconfirmed" and result.resend_at:
        return "provider_confirmation", result.resend_at
    if result.status == "deferred" and result.deferred_until:
        return "frequency_cap", result.deferred_until
    return None


