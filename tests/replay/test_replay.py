"""Every recorded history replays against today's workflow code, so a change that would break
lifecycles in flight fails the build instead of failing them (see docs/testing.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from tests.replay.careless_change import WaitsBeforeStarting
from workflows.lifecycle import PurchaseLifecycle

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text())


def test_the_full_scenarios_are_recorded():
    scenarios = {path.name.split("--")[1] for path in RECORDED}
    assert {
        "happy_path_with_creator", "repeat_purchase_thresholds_and_tier", "refund_before_day_7",
        "unsubscribe_midway", "cancel_midway", "resend_a_step", "many_repeats_continue_as_new",
    } <= scenarios


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_recorded_history_replays(path: Path):
    await Replayer(workflows=[PurchaseLifecycle]).replay_workflow(load(path))


async def test_an_unpatched_change_fails_the_replay():
    history = load(RECORDED[0])
    with pytest.raises(workflow.NondeterminismError):
        await Replayer(workflows=[WaitsBeforeStarting]).replay_workflow(history)
