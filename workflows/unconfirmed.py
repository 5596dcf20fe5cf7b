"""When a lifecycle looks again at a send SendGrid may have taken but has not confirmed.

SendGrid has no idempotency key, so a send whose earlier attempt may have reached it (the worker
died, or the call timed out, after the request went out) is only resent once its `processed` or
`delivered` event has had time to arrive. Plain code, shared by the lifecycle and the support
resend, and unit-tested without a server.
"""

from __future__ import annotations

from datetime import datetime, timedelta

FIRST_CHECK = timedelta(seconds=10)
LONGEST_CHECK = timedelta(minutes=2)


def next_check(now: datetime, resend_at: datetime, checks_done: int) -> timedelta:
    """The wait before the next look: doubling from 10 s, at most 2 minutes, and never past the
    moment the step resends itself (so the resend is not late by a whole interval)."""
    growing = min(FIRST_CHECK * (1 << min(checks_done, 16)), LONGEST_CHECK)
    return max(min(growing, resend_at - now), timedelta(0))
