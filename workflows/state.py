"""A lifecycle's derived state: its next step, when it next wakes, its stage, whether a repeat
purchase counts, which credits are due. Plain functions of the carried state and a time, so the
workflow only orchestrates and these are unit-tested without a server (tests/workflows/
test_state.py). Each returns exactly what the workflow computed inline before, so recorded
histories replay unchanged."""

from __future__ import annotations

from datetime import datetime

from workflows.contract import Attribution, CarriedState, LifecyclePlan, Stage, StepDue

# The attributions whose referrer earns credits; the others earn nothing.
CREDITED = (Attribution.CREATOR, Attribution.CUSTOMER)


def credited_referrer(plan: LifecyclePlan) -> str | None:
    """The code of the referrer this purchase credits, if any."""
    return plan.referrer_code if plan.referrer_code and plan.attribution in CREDITED else None


def next_step(state: CarriedState) -> StepDue | None:
    """The first scheduled step not done yet; none once the lifecycle is stopped."""
    if state.stopped is not None:
        return None
    return next((s for s in state.plan.steps if s.step not in state.steps_done), None)


def counts_repeat(state: CarriedState, placed_at: datetime) -> bool:
    """Whether a repeat purchase placed at `placed_at` earns the referrer credits: the lifecycle
    is not stopped, someone is credited, and it falls inside the attribution window. With `now`
    for `placed_at` it says whether the lifecycle still takes repeat purchases."""
    return (
        state.stopped is None
        and credited_referrer(state.plan) is not None
        and placed_at < state.plan.window_closes_at
    )


def due_credits(state: CarriedState, now: datetime) -> list[int]:
    """The pending credits whose hold has passed."""
    return [cid for cid, after in state.pending_approvals.items() if after <= now]


def next_wake(state: CarriedState, now: datetime) -> datetime | None:
    """The earliest of: a credit's approval, the next step, the attribution window closing."""
    times = list(state.pending_approvals.values())
    if (step := next_step(state)) is not None:
        times.append(step.due_at)
    if counts_repeat(state, now):
        times.append(state.plan.window_closes_at)
    return min(times, default=None)


def stage(state: CarriedState, now: datetime) -> Stage:
    if state.stopped is not None:
        return state.stopped
    if next_step(state) is not None:
        return Stage.ONBOARDING
    if counts_repeat(state, now):
        return Stage.WAITING_FOR_REPEATS
    return Stage.HOLDING_CREDITS if state.pending_approvals else Stage.COMPLETED
