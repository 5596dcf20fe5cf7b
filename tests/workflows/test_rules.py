"""Schedule and reward rules: read from configuration, refused with a message naming the fault."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from activities.schedule import long_past, step_due_at
from workflows.rules import LifecycleRules


def test_defaults_are_the_specs() -> None:
    rules = LifecycleRules()
    assert [(s.step, s.day) for s in rules.steps] == [
        ("day_1", 1),
        ("day_7", 7),
        ("referral_prompt", 7),
        ("day_21", 21),
    ]
    assert (rules.attribution_window_days, rules.hold_days, rules.send_hour) == (180, 30, 10)
    assert rules.spend_thresholds == ["100", "250", "500"]


def test_milestones_crossed_by_one_purchase() -> None:
    rules = LifecycleRules()
    assert rules.milestones_crossed("49.00", "299.00") == ["spend:100", "spend:250", "tier:silver"]
    assert rules.milestones_crossed("100", "120") == []  # 100 was already reached
    assert rules.milestones_crossed("99.99", "100.00") == ["spend:100"]


def test_a_threshold_may_have_its_own_reward() -> None:
    rules = LifecycleRules.from_dict(
        {
            "rewards": {
                "referral": "5",
                "first_repeat_purchase": "5",
                "spend": "10",
                "spend:500": "25",
                "tier": "15",
            }
        }
    )
    assert (rules.reward("spend:500"), rules.reward("spend:100"), rules.reward("tier:gold")) == (
        "25",
        "10",
        "15",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"hold_day": 3}, "unknown rule(s): hold_day"),
        ({"send_hour": 24}, "send_hour must be between 0 and 23"),
        ({"spend_thresholds": ["100", "-5"]}, "'-5' is not a non-negative decimal amount"),
        ({"spend_thresholds": ["lots"]}, "'lots' is not a non-negative decimal amount"),
        ({"rewards": {"referral": "5"}}, "rewards lack: first_repeat_purchase, spend, tier"),
        ({"day_seconds": 0}, "day_seconds must be positive"),
        ({"frequency_cap_hours": -1}, "frequency_cap_hours must be between 0 and 720"),
        ({"frequency_cap_hours": 721}, "frequency_cap_hours must be between 0 and 720"),
        ({"frequency_cap_hours": "16"}, "frequency_cap_hours must be between 0 and 720"),
        ({"frequency_cap_hours": True}, "frequency_cap_hours must be between 0 and 720"),
    ],
)
def test_bad_rules_name_what_is_wrong(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        LifecycleRules.from_dict(raw)


def test_send_hour_is_local_across_a_daylight_saving_change() -> None:
    # Lisbon leaves summer time on 2026-10-25: the Day 7 email still goes out at 10:00 local.
    placed = datetime(2026, 10, 20, 18, 30, tzinfo=UTC)
    lisbon = ZoneInfo("Europe/Lisbon")
    day_1 = step_due_at(placed, 1, "Europe/Lisbon", LifecycleRules()).astimezone(lisbon)
    day_7 = step_due_at(placed, 7, "Europe/Lisbon", LifecycleRules()).astimezone(lisbon)
    assert (day_1.isoformat(), day_7.isoformat()) == (
        "2026-10-21T10:00:00+01:00",
        "2026-10-27T10:00:00+00:00",
    )


def test_the_customers_own_date_counts_not_utcs() -> None:
    # 23:30 UTC on the 20th is already the 21st in Tokyo: Day 1 is the 22nd there.
    placed = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    due = step_due_at(placed, 1, "Asia/Tokyo", LifecycleRules()).astimezone(ZoneInfo("Asia/Tokyo"))
    assert due.isoformat() == "2026-11-22T10:00:00+09:00"


def test_a_compressed_day_ignores_clock_hours() -> None:
    placed = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    due = step_due_at(placed, 7, "Europe/Lisbon", LifecycleRules(day_seconds=60))
    assert (due - placed).total_seconds() == 7 * 60


@pytest.mark.parametrize("name", ["day:1", "../day_1", "Day_1", "", "day 1", "day-1"])
def test_step_and_tier_names_cannot_make_keys_or_paths_ambiguous(name: str) -> None:
    """`<lifecycle id>:<step>` keys an email: a step `b:c` of order `a` and a step `c` of
    order `a:b` would be one key."""
    with pytest.raises(ValueError, match="step and tier names"):
        LifecycleRules.from_dict({"steps": [{"step": name, "day": 1}]})
    with pytest.raises(ValueError, match="step and tier names"):
        LifecycleRules.from_dict({"tiers": [{"name": name, "min_spend": "10"}]})


# Boundaries the mutation run found unguarded (docs/testing.md, "Mutation testing").

@pytest.mark.parametrize("raw", [
    {"day_seconds": 1}, {"send_hour": 0}, {"send_hour": 23}, {"frequency_cap_hours": 0},
    {"frequency_cap_hours": 720}, {"attribution_window_days": 0, "hold_days": 0},
    {"spend_thresholds": ["0", "0.5"]},
])
def test_the_edges_of_every_range_are_allowed(raw: dict) -> None:
    LifecycleRules.from_dict(raw)


@pytest.mark.parametrize("raw", [{"attribution_window_days": -1}, {"hold_days": -1}])
def test_either_negative_period_is_refused_by_name(raw: dict) -> None:
    with pytest.raises(ValueError) as refused:
        LifecycleRules.from_dict(raw)
    assert str(refused.value) == "attribution_window_days and hold_days must not be negative"


def test_unknown_rules_are_listed_with_the_known_ones() -> None:
    with pytest.raises(ValueError) as refused:
        LifecycleRules.from_dict({"hold_day": 1, "send_hours": 9})
    known = ", ".join(sorted(f.name for f in dataclasses.fields(LifecycleRules)))
    assert str(refused.value) == f"unknown rule(s): hold_day, send_hours; known: {known}"


def test_a_milestone_with_a_colon_in_its_value_falls_back_to_its_kind() -> None:
    assert LifecycleRules().reward("spend:100:late") == "10.00"


def test_a_tier_is_crossed_by_reaching_it_not_by_starting_there() -> None:
    rules = LifecycleRules()
    assert rules.milestones_crossed("100", "150") == ["tier:silver"]  # spend:100 was before
    assert rules.milestones_crossed("150", "200") == []


def test_a_due_time_keeps_the_purchases_own_offset() -> None:
    placed = datetime(2026, 11, 20, 18, 0, tzinfo=ZoneInfo("Asia/Kolkata"))
    assert step_due_at(placed, 1, "Europe/Lisbon", LifecycleRules()).tzinfo is placed.tzinfo


def test_a_step_is_long_past_only_more_than_a_day_before_the_report() -> None:
    reported = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    rules = LifecycleRules()
    assert not long_past(reported - timedelta(days=1), reported, rules)
    assert long_past(reported - timedelta(days=1, seconds=1), reported, rules)
    assert long_past(reported - timedelta(days=1.5), reported, rules)
