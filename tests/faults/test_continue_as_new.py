"""A lifecycle with endless repeat purchases keeps a bounded history: on a real server that
suggests continue-as-new at 200 events, each run stays near that size and the state carried
across runs loses nothing (every repeat counted, every milestone credited once)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from database.session import make_engine, make_sessionmaker, upgrade
from tests.faults.conftest import SUGGEST_CONTINUE_AS_NEW_AT
from tests.histories.record import fetch_runs
from tests.lifecycle_kit import LifecycleKit
from workflows.contract import LifecycleStatus, RepeatPurchase
from workflows.lifecycle import PurchaseLifecycle
from workflows.rules import LifecycleRules, StepRule

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
REPEATS = 600
RULES = LifecycleRules(
    day_seconds=1, steps=[StepRule("day_1", 1)], attribution_window_days=120, hold_days=1
)
BURST = 50
# A run ends at the first quiet moment after the suggestion (never with signals queued), so a
# burst of repeat purchases arriving meanwhile adds to it.
MAX_EVENTS_PER_RUN = SUGGEST_CONTINUE_AS_NEW_AT * 2


async def caught_up(lifecycle: WorkflowHandle, repeats: int) -> LifecycleStatus:
    """The shop's repeat purchases come in bursts; wait for the lifecycle to take each in."""
    for _ in range(300):
        status = await lifecycle.query(PurchaseLifecycle.status)
        if status.repeats >= repeats:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"lifecycle took {status.repeats} of {repeats} repeat purchases")


@pytest.fixture
def own_sessions(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    return make_sessionmaker(make_engine(url))


@pytest.mark.faults
@pytest.mark.timeout(300)
async def test_many_repeat_purchases_continue_as_new_with_bounded_runs(
    dev_server: WorkflowEnvironment, own_sessions: sessionmaker[Session]
):
    async with LifecycleKit.running(dev_server, own_sessions, TEMPLATES) as kit:
        kit.service.rules = RULES
        creator = kit.add_creator("LOOP")
        handle = await kit.buy(await kit.placed_now("can-1", referral=creator, total="49.00"))
        lifecycle = kit.client.get_workflow_handle(handle.id)
        spend = Decimal("49.00")
        batch: list[RepeatPurchase] = []
        for n in range(REPEATS):
            spend += 2
            batch.append(RepeatPurchase(f"can-1-r{n}", "2.00", str(spend)))
        for start in range(0, REPEATS, BURST):
            await asyncio.gather(
                *(
                    lifecycle.signal(PurchaseLifecycle.repeat_purchase, r)
                    for r in batch[start : start + BURST]
                )
            )
            status = await caught_up(lifecycle, start + BURST)
        await lifecycle.signal(PurchaseLifecycle.cancel)
        await handle.result()
        runs = await fetch_runs(kit.client, handle.id)
        credits = sorted(c.milestone for c in kit.credits(creator))

    sizes = [(len(run.events), len(run.to_json())) for run in runs]
    print(
        f"{REPEATS} repeat purchases: {len(runs)} runs; events and bytes per run: {sizes}; "
        f"all runs together {sum(e for e, _ in sizes)} events, {sum(b for _, b in sizes)} bytes"
    )
    assert status.repeats == REPEATS
    assert len(runs) >= 3
    assert max(events for events, _ in sizes) <= MAX_EVENTS_PER_RUN
    assert credits == sorted(
        [
            "referral",
            "first_repeat_purchase",
            "spend:100",
            "spend:250",
            "spend:500",
            "tier:silver",
            "tier:gold",
            "tier:platinum",
        ]
    )
    carried = json.loads(runs[-1].to_json())["events"][0]
    assert "continuedExecutionRunId" in json.dumps(carried)
