"""Two gaps of the lifecycle workflow that the fault run found, reproduced deterministically,
and closed behind `workflow.patched` (`repeat-window-by-placed-at`,
`act-on-signals-during-summary` in workflows/lifecycle.py): a repeat purchase placed inside the
attribution window counts however late the lifecycle gets to it, and a refund that lands while
the lifecycle summarizes is acted on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.purchases import PurchaseActivities
from database.session import make_engine, make_sessionmaker, upgrade
from shop_events.schemas import RefundEvent
from tests.faults.fake_sendgrid import FaultySendGrid
from tests.lifecycle_kit import LifecycleKit
from workflows.contract import LifecycleSummary, SummarizeLifecycle
from workflows.rules import LifecycleRules, StepRule

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
REPEAT_MILESTONES = ["first_repeat_purchase", "spend:100", "spend:250", "tier:silver"]


@pytest.fixture
def own_sessions(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    return make_sessionmaker(make_engine(url))


async def test_a_repeat_signalled_inside_the_window_is_credited_even_if_handled_later(
    env: WorkflowEnvironment, own_sessions: sessionmaker[Session]
):
    # SendGrid fails each email twice: day 1's retries (5 s, then 10 s) outlast a 10 s window.
    provider = FaultySendGrid("SG.gaps", seed=0, client_timeout_s=10.0, faults={"5xx": 1.0})
    with provider.serving() as url:
        async with LifecycleKit.running(
            env, own_sessions, TEMPLATES, sendgrid_api_key="SG.gaps", sendgrid_host=url
        ) as kit:
            kit.service.rules = LifecycleRules(
                day_seconds=1,
                steps=[StepRule("day_1", 1)],
                attribution_window_days=10,
                hold_days=1,
            )
            creator = kit.add_creator("LATE")
            first = await kit.buy(await kit.placed_now("gap-1", referral=creator, total="60.00"))
            await asyncio.sleep(2)  # day 1 has failed once and waits for its retry
            await kit.buy(await kit.placed_now("gap-2", total="250.00", skus=["GRINDER-2"]))
            await first.result()

    milestones = sorted(c.milestone for c in kit.credits(creator))
    assert milestones == sorted(["referral", *REPEAT_MILESTONES])


class SlowSummary(PurchaseActivities):
    """The closing summary, held until the test releases it (the first call only: the
    lifecycle summarizes again after acting on the late refund)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        super().__init__(sessions)
        self.summarizing = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    @activity.defn(name="summarize_lifecycle")
    def summarize_lifecycle(self, req: SummarizeLifecycle) -> LifecycleSummary:
        self.calls += 1
        self.summarizing.set()
        self.release.wait(timeout=30)
        return super().summarize_lifecycle(req)


async def _signal_taken_while_summarizing(handle: WorkflowHandle[Any, Any]) -> bool:
    """True once the history shows the refund signal followed by a completed workflow task while
    the summary is held (so it has no marker yet): the workflow code has seen the signal while it
    awaited the summary. (A local activity outlasting 80% of the workflow task timeout makes the
    worker heartbeat the task, and the server hands it the buffered signal then.)"""
    signalled = False
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            signalled = True
        if signalled and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return True
    return False


async def test_a_refund_that_lands_while_the_lifecycle_closes_reverses_its_credits(
    env: WorkflowEnvironment, own_sessions: sessionmaker[Session]
):
    # The path `act-on-signals-during-summary` guards: the workflow is inside
    # `await summarize_lifecycle` when the refund signal reaches its code. Since the summary is a
    # local activity, a signal sent during a short summary is only delivered after it (the server
    # refuses the completion and the replay sees the signal first), which the main loop handles
    # with or without the patch. So the summary is held until the history proves the workflow took
    # the signal mid-summary (the worker's workflow-task heartbeat), then released.
    purchases = SlowSummary(own_sessions)
    async with LifecycleKit.running(env, own_sessions, TEMPLATES, purchases=purchases) as kit:
        kit.service.rules = LifecycleRules(
            day_seconds=1, steps=[], attribution_window_days=1, hold_days=0
        )
        creator = kit.add_creator("CLOSE")
        handle = await kit.buy(await kit.placed_now("close-1", referral=creator))
        assert await asyncio.to_thread(purchases.summarizing.wait, 30), "never summarized"
        before = [(c.milestone, c.amount, c.status) for c in kit.credits(creator)]
        assert before == [("referral", Decimal("5.00"), "approved")], before
        await kit.service.accept_refund(
            RefundEvent(
                shop_id=kit.shop_id, order_id="close-1", amount=Decimal("49.00"), reason="late"
            )
        )
        deadline = time.monotonic() + 25
        while not await _signal_taken_while_summarizing(handle):
            assert time.monotonic() < deadline, "the signal never reached the workflow"
            assert not purchases.release.is_set()
            await asyncio.sleep(0.2)
        purchases.release.set()
        summary = await handle.result()

    assert summary.stage == "refunded"
    assert purchases.calls >= 2  # summarized again after acting on the refund
    ledger = [(c.milestone, c.amount, c.status) for c in kit.credits(creator)]
    assert ledger == [
        ("referral", Decimal("5.00"), "approved"),
        ("clawback:referral", Decimal("-5.00"), "approved"),
    ], ledger
