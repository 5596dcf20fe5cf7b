"""Complete lifecycles per second and worker CPU per 1,000 of them: Loyalloop's real workers
against the baseline workflow, the same lifecycles on the same server, in mirrored halves.

A lifecycle here is the whole product path on a compressed calendar: attribution and the
referral credit, day_1, day_7 + referral_prompt, day_21, one repeat purchase crediting
first_repeat_purchase, spend:100 and tier:silver, the credits' holds, the window closing, the
summary. Days are one second, and the schedule is squeezed to days 1, 2, 2 and 3 with a 4-day
window so the run measures the worker, not the calendar.

Both workers get the same load: a closed loop keeping CONCURRENCY lifecycles in flight, more than
either worker can finish in one window, so each runs saturated and the rate is its capacity. The
dev server slows as it holds more histories, so the two run in mirrored halves (baseline,
Loyalloop, Loyalloop, baseline) and share that slowdown equally.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from bench import seed
from bench.baseline import BaselineInput, BaselineLifecycle, BaselineRepeat, BaselineStep
from bench.cluster import SharedCpu, SharedCpuMeter, WorkerProcess
from bench.cost import LifecycleCost, measure
from database.models import Credit, EmailSend
from intake.store import workflow_id_for
from workflows import search
from workflows.contract import LifecycleInput, RepeatPurchase
from workflows.lifecycle import PurchaseLifecycle
from workflows.rules import LifecycleRules, StepRule

RULES = LifecycleRules(
    day_seconds=1,
    steps=[StepRule("day_1", 1), StepRule("day_7", 2),
           StepRule("referral_prompt", 2, once_per="customer"), StepRule("day_21", 3)],
    attribution_window_days=4,
    hold_days=1,
)
BASELINE = BaselineInput(
    steps=[BaselineStep(s.step, s.day * RULES.day_seconds) for s in RULES.steps],
    hold_s=RULES.hold_days * RULES.day_seconds,
    window_s=RULES.attribution_window_days * RULES.day_seconds,
)
HISTORIES_SAMPLED = 25
CONCURRENCY = 128


@dataclass
class Throughput:
    lifecycles: int
    per_s: float
    worker_cpu_s: float
    peak_rss_mb: float
    cost: LifecycleCost
    verified: str
    db_statements_per_lifecycle: float = 0.0
    db_commits_per_lifecycle: float = 0.0
    shared: SharedCpu = SharedCpu(0.0, 0.0)

    @property
    def complete(self) -> bool:
        return not self.verified.startswith("INCOMPLETE")

    @property
    def cpu_per_1000(self) -> float:
        return self.worker_cpu_s / self.lifecycles * 1000

    @property
    def server_cpu_ms(self) -> float:
        return self.shared.server_s / self.lifecycles * 1000

    @property
    def database_cpu_ms(self) -> float:
        return self.shared.database_s / self.lifecycles * 1000

    def joined(self, later: Throughput) -> Throughput:
        """Both halves as one run: the rate over their measured time together, the history
        cost from this half's sample."""
        lifecycles = self.lifecycles + later.lifecycles
        seconds = self.lifecycles / self.per_s + later.lifecycles / later.per_s
        verified = next((h.verified for h in (self, later) if not h.complete), None)
        return Throughput(
            lifecycles,
            lifecycles / seconds,
            self.worker_cpu_s + later.worker_cpu_s,
            max(self.peak_rss_mb, later.peak_rss_mb),
            self.cost,
            verified or f"{self.verified} in the first half, {later.verified} in the second",
            (self.db_statements_per_lifecycle + later.db_statements_per_lifecycle) / 2,
            (self.db_commits_per_lifecycle + later.db_commits_per_lifecycle) / 2,
            SharedCpu(self.shared.server_s + later.shared.server_s,
                      self.shared.database_s + later.shared.database_s),
        )


async def side_by_side(
    client: Client,
    address: str,
    sessions: sessionmaker[Session],
    database_url: str,
    count: int,
    profile: Path | None = None,
    server_pid: int | None = None,
) -> tuple[Throughput, Throughput]:
    """Loyalloop's worker and the baseline, `count` lifecycles each, in mirrored halves; with
    `server_pid`, the Temporal server's CPU is measured too."""
    half = count // 2
    base_first = await run_baseline(client, address, half, server_pid=server_pid)
    real_first = await run_real(client, address, sessions, database_url, half, profile=profile,
                                server_pid=server_pid)
    real_second = await run_real(client, address, sessions, database_url, count - half,
                                 server_pid=server_pid)
    base_second = await run_baseline(client, address, count - half, server_pid=server_pid)
    return real_first.joined(real_second), base_first.joined(base_second)


async def closed_loop(count: int, lifecycle: Callable[[int], Awaitable[None]]) -> float:
    """Run `count` lifecycles, CONCURRENCY in flight (each one ending starts the next), and return
    the steady rate of completions: those between the 10th and 90th percentile, leaving out the
    ramp up and the last lifecycles' idle timers."""
    done: list[float] = []
    queue = iter(range(count))

    async def runner() -> None:
        for index in queue:
            await lifecycle(index)
            done.append(time.monotonic())

    await asyncio.gather(*(runner() for _ in range(min(CONCURRENCY, count))))
    done.sort()
    low, high = int(count * 0.1), int(count * 0.9) - 1
    return (high - low) / (done[high] - done[low])


async def run_real(
    client: Client, address: str, sessions: sessionmaker[Session], database_url: str, count: int,
    profile: Path | None = None, worker_flags: tuple[str, ...] = (), server_pid: int | None = None,
) -> Throughput:
    shop_id = f"bench-{uuid.uuid4().hex[:8]}"
    task_queue, email_queue = f"{shop_id}-lifecycles", f"{shop_id}-emails"
    seed.add_creator(sessions)
    orders = seed.purchases(sessions, shop_id, count)
    worker = WorkerProcess("real", "--address", address, "--task-queue", task_queue,
                           "--email-task-queue", email_queue, "--database-url", database_url,
                           *worker_flags, profile=profile)
    shared = SharedCpuMeter(server_pid)
    try:
        worker.wait_ready()
        before = worker.usage()
        shared.start()

        async def lifecycle(index: int) -> None:
            order = orders[index]
            await asyncio.to_thread(seed.place_now, sessions, shop_id, order)
            handle = await client.start_workflow(
                PurchaseLifecycle.run, LifecycleInput(shop_id, order, RULES, email_queue),
                id=workflow_id_for(shop_id, order), task_queue=task_queue,
                search_attributes=TypedSearchAttributes([
                    SearchAttributePair(search.SHOP_ID, shop_id),
                    SearchAttributePair(search.CUSTOMER_ID, f"c-{order}"),
                    SearchAttributePair(search.LIFECYCLE_STAGE, "starting"),
                ]),
            )
            # Placed now, as the intake stamps it: inside the window however long the saturated
            # worker takes to get to it.
            total = seed.FIRST_TOTAL + seed.REPEAT_TOTAL
            repeat = RepeatPurchase(f"{order}-r", str(seed.REPEAT_TOTAL), str(total),
                                    datetime.now(UTC))
            await handle.signal(PurchaseLifecycle.repeat_purchase, repeat)
            await handle.result()

        per_s = await closed_loop(count, lifecycle)
        after = worker.usage()
        spent = shared.stop()
    finally:
        statements, commits = worker.stop()
    ids = [workflow_id_for(shop_id, o) for o in orders[:HISTORIES_SAMPLED]]
    return Throughput(count, per_s, after.cpu_s - before.cpu_s, after.peak_rss_mb,
                      await measure(client, ids), _verify(sessions, shop_id, count),
                      round(statements / count, 1), round(commits / count, 1), spent)


def _verify(sessions: sessionmaker[Session], shop_id: str, count: int) -> str:
    """Every lifecycle must have done the whole job, or its speed means nothing."""
    with sessions() as session:
        sent = session.scalar(select(func.count()).where(
            EmailSend.shop_id == shop_id, EmailSend.status == "sent"))
        approved = session.scalar(select(func.count()).where(
            Credit.shop_id == shop_id, Credit.status == "approved"))
    expected_sent, expected_credits = count * len(RULES.steps), count * 4
    found = f"{sent}/{expected_sent} emails sent, {approved}/{expected_credits} credits approved"
    if sent != expected_sent or approved != expected_credits:
        return f"INCOMPLETE: {found}"
    return found


async def run_baseline(
    client: Client, address: str, count: int, profile: Path | None = None,
    server_pid: int | None = None,
) -> Throughput:
    run_id = uuid.uuid4().hex[:8]
    task_queue = f"baseline-{run_id}"
    worker = WorkerProcess(
        "baseline", "--address", address, "--task-queue", task_queue, profile=profile
    )
    shared = SharedCpuMeter(server_pid)
    try:
        worker.wait_ready()
        before = worker.usage()
        shared.start()

        async def lifecycle(index: int) -> None:
            handle = await client.start_workflow(
                BaselineLifecycle.run, BASELINE, id=f"baseline-{run_id}-{index}",
                task_queue=task_queue,
            )
            await handle.signal(BaselineLifecycle.repeat_purchase,
                                BaselineRepeat(f"{index}-r", "120.00", "169.00"))
            await handle.result()

        per_s = await closed_loop(count, lifecycle)
        after = worker.usage()
        spent = shared.stop()
    finally:
        worker.stop()
    ids = [f"baseline-{run_id}-{i}" for i in range(min(count, HISTORIES_SAMPLED))]
    return Throughput(count, per_s, after.cpu_s - before.cpu_s, after.peak_rss_mb,
                      await measure(client, ids), "no-op", shared=spent)
