"""The benchmark's cost counter reads real histories: the baseline workflow's actions are known
exactly, so a miscount (or a baseline that stops doing its job) fails here."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.baseline import BaselineInput, BaselineLifecycle, BaselineRepeat, BaselineStep, noop
from bench.cost import measure
from bench.run import ROWS, table


async def test_baseline_lifecycle_costs_what_it_should(env: WorkflowEnvironment) -> None:
    queue = f"baseline-{uuid.uuid4().hex[:8]}"
    steps = [BaselineStep("day_1", 1), BaselineStep("day_7", 2),
             BaselineStep("referral_prompt", 2), BaselineStep("day_21", 3)]
    with ThreadPoolExecutor(4) as executor:
        async with Worker(env.client, task_queue=queue, workflows=[BaselineLifecycle],
                          activities=[noop], activity_executor=executor):
            handle = await env.client.start_workflow(
                BaselineLifecycle.run, BaselineInput(steps, hold_s=1, window_s=10),
                id=f"{queue}-1", task_queue=queue,
            )
            await handle.signal(BaselineLifecycle.repeat_purchase,
                                BaselineRepeat("o-r", "120.00", "169.00"))
            assert await handle.result() == 4
    cost = await measure(env.client, [f"{queue}-1"])
    # begin, 4 sends, the repeat's credit, 2 approvals, the summary.
    assert cost.activities == {"no-op": 9}
    # steps at 1, 2 and 3 s, the window, a hold after each credit.
    assert cost.actions["timer"] == 6
    assert cost.actions["workflow start"] == 1
    assert cost.actions["signal"] == 1
    assert cost.actions_per_lifecycle == 17
    assert cost.events > 17 and cost.bytes > 1000


def test_table_says_when_a_run_is_quick() -> None:
    """Every row of the table is printed from the figures a run produces; the keys come from the
    table's own rows, so a new row is checked here the day it is added."""
    keys = {key for _, *row_keys, _ in ROWS for key in row_keys if key}
    keys |= {"load_average_at_start", "events", "events_recorded", "intake_accepted",
             "intake_lifecycles_started", "direct_lifecycles_started", "lifecycles", "purchases",
             "open_lifecycles", "bench_seconds"}
    figures: dict[str, object] = dict.fromkeys(keys, 1)
    figures |= {"mode": "quick", "machine": "test", "lifecycles_verified": "ok"}
    shown = table(figures)
    assert "quick run" in shown and "not 10,000" in shown
    assert all(label in shown for label, *_ in ROWS)
