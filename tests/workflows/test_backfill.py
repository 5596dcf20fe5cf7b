"""A shop backfilling old orders: steps long past when the order is reported are skipped with
a reason, not sent together in the same minute; the steps still ahead go out on time. A
lifecycle that starts late through our own delay sends every step."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.lifecycle_kit import LifecycleKit


async def test_steps_long_past_when_reported_are_skipped_the_rest_sent(kit: LifecycleKit):
    placed = await kit.now() - timedelta(days=10)
    handle = await kit.buy(kit.purchase("B1", placed_at=placed))
    summary = await handle.result()

    rows = {row.step: (row.status, row.skip_reason) for row in kit.emails(handle.id)}
    assert rows == {
        "day_1": ("skipped", "past_due_when_reported"),
        "day_7": ("skipped", "past_due_when_reported"),
        "referral_prompt": ("skipped", "past_due_when_reported"),
        "day_21": ("sent", None),
    }
    assert summary.emails_sent == 1
    assert summary.emails_skipped == {"past_due_when_reported": 3}
    assert [m.subject for m in kit.outbox(handle.id)]  # day 21 reached the outbox


async def test_a_step_due_less_than_a_day_ago_still_goes_out(kit: LifecycleKit):
    placed = await kit.now() - timedelta(days=1)  # day 1 fell due less than a day ago, or is near
    handle = await kit.buy(kit.purchase("B2", placed_at=placed))
    summary = await handle.result()
    assert summary.emails_sent == 4, summary


async def test_a_lifecycle_we_were_slow_to_start_sends_every_step(kit: LifecycleKit):
    """Stored at once, started three days later (Temporal down, the shop's retry late): the
    delay is ours, so nothing is skipped."""
    event = await kit.placed_now("B3")
    await asyncio.to_thread(kit.service._store_purchase, event)
    await kit.skip(3)
    handle = await kit.buy(event)
    summary = await handle.result()
    assert summary.emails_sent == 4, summary
    assert "past_due_when_reported" not in summary.emails_skipped
