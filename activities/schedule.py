"""When each step is due: at the send hour in the customer's own time zone."""

from __future__ import annotations

import math
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workflows.rules import LifecycleRules

REAL_DAY = 86400


def step_due_at(placed_at: datetime, day: int, timezone: str, rules: LifecycleRules) -> datetime:
    """Day N at `send_hour` local time. A compressed day (demos) has no clock hours, so its
    steps fall at whole compressed days after the purchase."""
    if rules.day_seconds != REAL_DAY:
        return placed_at + timedelta(seconds=day * rules.day_seconds)
    zone = _zone(timezone)
    due_date = placed_at.astimezone(zone).date() + timedelta(days=day)
    return datetime.combine(due_date, time(rules.send_hour), tzinfo=zone).astimezone(
        placed_at.tzinfo
    )


def next_send_hour(
    earliest: datetime, placed_at: datetime, timezone: str, send_hour: int, day_seconds: int
) -> datetime:
    """The first send hour at or after `earliest`, where an email held back by the frequency cap
    goes out: `send_hour` local time, or on a compressed day the next whole day after the
    purchase (the moments its steps fall on)."""
    if day_seconds != REAL_DAY:
        elapsed = (earliest - placed_at).total_seconds()
        return placed_at + timedelta(seconds=math.ceil(elapsed / day_seconds) * day_seconds)
    zone = _zone(timezone)
    local = earliest.astimezone(zone)
    at = datetime.combine(local.date(), time(send_hour), tzinfo=zone)
    if at < earliest:
        at = datetime.combine(local.date() + timedelta(days=1), time(send_hour), tzinfo=zone)
    return at.astimezone(earliest.tzinfo)


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def days(rules: LifecycleRules, count: int) -> timedelta:
    return timedelta(seconds=count * rules.day_seconds)


def long_past(due_at: datetime, reported_at: datetime, rules: LifecycleRules) -> bool:
    """A step due more than a day before the shop reported the order (a backfilled old order)
    is skipped rather than sent with every other overdue step in the same minute. Measured
    from the report, not the lifecycle's start: a lifecycle we were slow to start (a worker
    down, a retried intake) still sends every step."""
    return due_at < reported_at - days(rules, 1)
