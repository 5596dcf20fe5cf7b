"""The benchmark's cost counter reads real histories: the baseline workflow's actions are known
exactly, so a miscount (or a baseline that stops doing its job) fails here."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.baseline import BaselineInput, BaselineLifecycle, BaselineRepeat, BaselineStep, noop
from bench.cost import measure
from bench.run import table


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
    keys = [
        "intake_per_s", "direct_start_per_s", "intake_ratio", "lifecycles_per_s",
        "baseline_lifecycles_per_s", "lifecycle_ratio", "worker_cpu_s_per_1000",
        "baseline_worker_cpu_s_per_1000", "history_events_per_lifecycle",
        "baseline_history_events", "history_bytes_per_lifecycle", "baseline_history_bytes",
        "actions_per_lifecycle", "baseline_actions_per_lifecycle", "db_statements_per_lifecycle",
        "db_commits_per_lifecycle", "open_lifecycles", "worker_peak_rss_mb", "signal_fanout_s",
        "signals_accepted_s", "renders_per_s", "sends_per_s", "bench_seconds", "intake_accepted",
        "intake_lifecycles_started", "direct_lifecycles_started", "lifecycles", "purchases",
        "load_average_at_start", "shared_cores_intake_per_s", "shared_cores_direct_start_per_s",
        "shared_cores_intake_ratio", "intake_cpu_ms_per_purchase",
        "shared_cores_intake_cpu_ms_per_purchase", "server_cpu_ms_per_lifecycle",
        "baseline_server_cpu_ms_per_lifecycle", "database_cpu_ms_per_lifecycle",
        "baseline_database_cpu_ms_per_lifecycle",
    ]
    figures: dict[str, object] = dict.fromkeys(keys, 1)
    figures |= {"mode": "quick", "machine": "test", "lifecycles_verified": "ok"}
    shown = table(figures)
    assert "quick run" in shown and "not 10,000" in shown
    assert shown.count("\n") >= 15
