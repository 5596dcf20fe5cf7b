"""When each step is due: at the send hour in the customer's own time zone."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workflows.rules import LifecycleRules

REAL_DAY = 86400


def step_due_at(placed_at: datetime, day: int, timezone: str, rules: LifecycleRules) -> datetime:
    """Day N at `send_hour` local time. A compressed day (demos) has no clock hours, so its
    steps fall at whole compressed days after the purchase."""
    if rules.day_seconds != REAL_DAY:
        return placed_at + timedelta(seconds=day * rules.day_seconds)
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    local = placed_at.astimezone(zone)
    due_date = local.date() + timedelta(days=day)
    return datetime.combine(due_date, time(rules.send_hour), tzinfo=zone).astimezone(
        placed_at.tzinfo
    )


def days(rules: LifecycleRules, count: int) -> timedelta:
    return timedelta(seconds=count * rules.day_seconds)


def long_past(due_at: datetime, reported_at: datetime, rules: LifecycleRules) -> bool:
    """A step due more than a day before the shop reported the order (a backfilled old order)
    is skipped rather than sent with every other overdue step in the same minute. Measured
    from the report, not the lifecycle's start: a lifecycle we were slow to start (a worker
    down, a retried intake) still sends every step."""
    return due_at < reported_at - days(rules, 1)
