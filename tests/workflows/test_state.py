"""A lifecycle's derived state, without a server: next step, next wake, stage, whether a repeat
purchase counts, which credits are due (workflows/state.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows import state as derived
from workflows.contract import CarriedState, LifecyclePlan, StepDue

T0 = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def _at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def carried(attribution: str = "creator", referrer: str | None = "MAYA10", **changes: object
            ) -> CarriedState:
    plan = LifecyclePlan(
        customer_id="c-42", referrer_code=referrer, attribution=attribution,
        steps=[StepDue("day_1", _at(1)), StepDue("day_7", _at(7)),
               StepDue("referral_prompt", _at(7), once_per="customer"),
               StepDue("day_21", _at(21))],
        window_closes_at=_at(180),
    )
    return CarriedState(plan=plan, **changes)  # type: ignore[arg-type]


def test_the_next_step_is_the_first_not_done_and_none_once_stopped() -> None:
    state = carried(steps_done={"day_1": "sent", "day_7": "skipped:unsubscribed"})
    assert derived.next_step(state) == StepDue("referral_prompt", _at(7), once_per="customer")
    assert derived.next_step(carried(steps_done=dict.fromkeys(
        ["day_1", "day_7", "referral_prompt", "day_21"], "sent"))) is None
    assert derived.next_step(carried(stopped="refunded")) is None


@pytest.mark.parametrize(("attribution", "referrer", "counts"), [
    ("creator", "MAYA10", True),
    ("customer", "ANA-7Q2", True),
    ("self_referral", "MAYA10", False),  # a code used on oneself earns nothing
    ("none", None, False),
    ("creator", None, False),
])
def test_a_repeat_counts_only_when_someone_is_credited(
    attribution: str, referrer: str | None, counts: bool,
) -> None:
    assert derived.counts_repeat(carried(attribution, referrer), T0) is counts


def test_a_repeat_counts_inside_the_window_by_when_it_was_placed() -> None:
    state = carried()
    closes = T0 + timedelta(days=180)
    assert derived.counts_repeat(state, closes - timedelta(microseconds=1))
    assert not derived.counts_repeat(state, closes)  # the window is half-open
    assert not derived.counts_repeat(carried(stopped="cancelled"), T0)


def test_credits_are_due_once_their_hold_has_passed() -> None:
    state = carried(pending_approvals={1: _at(30), 2: _at(31)})
    assert derived.due_credits(state, T0 + timedelta(days=30)) == [1]
    assert derived.due_credits(state, T0 + timedelta(days=29)) == []


def test_the_lifecycle_wakes_for_the_earliest_of_step_credit_and_window() -> None:
    assert derived.next_wake(carried(), T0) == T0 + timedelta(days=1)
    done = dict.fromkeys(["day_1", "day_7", "referral_prompt", "day_21"], "sent")
    assert derived.next_wake(carried(steps_done=done, pending_approvals={3: _at(40)}), T0) == (
        T0 + timedelta(days=40))
    # nothing left but the window: wake when it closes, then nothing
    assert derived.next_wake(carried(steps_done=done), T0) == T0 + timedelta(days=180)
    assert derived.next_wake(carried(steps_done=done), T0 + timedelta(days=180)) is None
    assert derived.next_wake(carried("none", None, steps_done=done), T0) is None


def test_the_stage_follows_what_is_left() -> None:
    done = dict.fromkeys(["day_1", "day_7", "referral_prompt", "day_21"], "sent")
    after_window = T0 + timedelta(days=181)
    assert derived.stage(carried(), T0) == "onboarding"
    assert derived.stage(carried(steps_done=done), T0) == "waiting_for_repeats"
    assert derived.stage(carried(steps_done=done, pending_approvals={1: _at(200)}),
                         after_window) == "holding_credits"
    assert derived.stage(carried(steps_done=done), after_window) == "completed"
    assert derived.stage(carried("none", None, steps_done=done), T0) == "completed"
    assert derived.stage(carried(stopped="refunded"), T0) == "refunded"


def test_only_a_credited_attribution_names_its_referrer() -> None:
    assert derived.credited_referrer(carried().plan) == "MAYA10"
    assert derived.credited_referrer(carried("self_referral").plan) is None
    assert derived.credited_referrer(carried("customer", "").plan) is None
