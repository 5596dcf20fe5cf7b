"""Many lifecycles open at once on one worker, all waiting for repeat purchases: the worker's
peak memory, and how long one repeat-purchase signal to every one of them takes to be handled
(signalled, replayed or taken from the cache, credited in the ledger)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from bench import seed
from bench.cluster import WorkerProcess
from bench.intake import each
from database.models import Credit
from intake.store import workflow_id_for
from workflows import search
from workflows.contract import LifecycleInput, RepeatPurchase
from workflows.lifecycle import PurchaseLifecycle
from workflows.rules import LifecycleRules

# Onboarding already behind them: no steps left, a long window, credits on hold.
RULES = LifecycleRules(day_seconds=1, steps=[], attribution_window_days=86400, hold_days=86400)


@dataclass
class Scale:
    open_lifecycles: int
    open_s: float
    peak_rss_mb: float
    rss_open_mb: float
    signal_fanout_s: float
    signals_accepted_s: float
    max_cached_workflows: int
    open_cpu_s: float = 0.0
    fanout_cpu_s: float = 0.0


async def _count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


async def run(
    client: Client, address: str, sessions: sessionmaker[Session], database_url: str, count: int,
    max_cached: int, profile: Path | None = None, worker_flags: tuple[str, ...] = (),
) -> Scale:
    shop_id = f"scale-{uuid.uuid4().hex[:8]}"
    task_queue = f"{shop_id}-lifecycles"
    seed.add_creator(sessions)
    orders = seed.purchases(sessions, shop_id, count)
    worker = WorkerProcess("real", "--address", address, "--task-queue", task_queue,
                           "--email-task-queue", f"{shop_id}-emails", "--database-url",
                           database_url, "--max-cached", str(max_cached), *worker_flags,
                           profile=profile)
    try:
        worker.wait_ready()
        cpu_ready = worker.usage().cpu_s
        began = time.perf_counter()

        async def start(_: int, index: int) -> None:
            order = orders[index]
            await client.start_workflow(
                PurchaseLifecycle.run, LifecycleInput(shop_id, order, RULES, f"{shop_id}-emails"),
                id=workflow_id_for(shop_id, order), task_queue=task_queue,
                search_attributes=TypedSearchAttributes([
                    SearchAttributePair(search.SHOP_ID, shop_id),
                    SearchAttributePair(search.CUSTOMER_ID, f"c-{order}"),
                    SearchAttributePair(search.LIFECYCLE_STAGE, "starting"),
                ]),
            )

        await each(range(count), start)
        waiting = f"TaskQueue = '{task_queue}' AND LifecycleStage = 'waiting_for_repeats'"
        while await _count(client, waiting) < count:
            await asyncio.sleep(0.5)
        open_s = time.perf_counter() - began
        opened = worker.usage()
        rss_open, open_cpu = opened.rss_mb, opened.cpu_s - cpu_ready

        began = time.perf_counter()
        total = seed.FIRST_TOTAL + seed.REPEAT_TOTAL

        async def signal(_: int, index: int) -> None:
            order = orders[index]
            await client.get_workflow_handle(workflow_id_for(shop_id, order)).signal(
                PurchaseLifecycle.repeat_purchase,
                RepeatPurchase(f"{order}-r", str(seed.REPEAT_TOTAL), str(total)),
            )

        await each(range(count), signal)
        accepted_s = time.perf_counter() - began
        while _credited(sessions, shop_id) < count:
            await asyncio.sleep(0.2)
        fanout_s = time.perf_counter() - began
        fanned = worker.usage()
    finally:
        worker.stop()
    return Scale(count, open_s, fanned.peak_rss_mb, rss_open, fanout_s, accepted_s, max_cached,
                 open_cpu, fanned.cpu_s - opened.cpu_s)


def _credited(sessions: sessionmaker[Session], shop_id: str) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).where(
            Credit.shop_id == shop_id, Credit.milestone == "first_repeat_purchase")) or 0
