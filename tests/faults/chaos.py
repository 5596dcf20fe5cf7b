"""The faults themselves: PostgreSQL connections cut, the worker killed, the intake dying between
storing a purchase and starting its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy
from sqlalchemy.exc import DBAPIError
from temporalio.service import RPCError

from intake.service import LifecycleService
from tests.faults.worker_process import WorkerProcess

T = TypeVar("T")


class IntakeCrashed(Exception):
    """The intake process died here: what it committed stays, the rest never happened."""


class CrashingIntake(LifecycleService):
    """The real intake service, dying once at a chosen point for chosen orders:
    `stored` (purchase committed, lifecycle not started), `started` (started, not answered),
    `routed` (a repeat purchase stored and started, not yet routed to the earlier lifecycle)."""

    def __init__(self, *args, crashes: dict[str, str], **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.crashes = dict(crashes)
        self.crashed: Counter[str] = Counter()

    def _crash_once(self, order_id: str, point: str) -> None:
        if self.crashes.get(order_id) == point:
            del self.crashes[order_id]
            self.crashed[point] += 1
            raise IntakeCrashed(f"{point}: {order_id}")

    async def _start(
        self, workflow_id: str, shop_id: str, order_id: str, customer_id: str
    ) -> bool:
        self._crash_once(order_id, "stored")
        started = await super()._start(workflow_id, shop_id, order_id, customer_id)
        self._crash_once(order_id, "started")
        return started

    async def _route_repeat(self, shop_id: str, order_id: str) -> None:
        self._crash_once(order_id, "routed")
        await super()._route_repeat(shop_id, order_id)


class Retries:
    """What a shop does when the intake fails: try again, counting why."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    async def __call__(self, call: Callable[[], Awaitable[T]], attempts: int = 200) -> T:
        for _ in range(attempts - 1):
            try:
                return await call()
            except IntakeCrashed:
                self.counts["intake_crashed"] += 1
            except DBAPIError:
                self.counts["database_dropped"] += 1
            except RPCError:
                self.counts["temporal_rpc"] += 1
            await asyncio.sleep(0.2)
        return await call()


class ConnectionCutter:
    """Terminates every backend of the app database (the worker's and the intake's)."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.engine = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.database = database
        self.sweeps: list[float] = []
        self.terminated = 0

    def cut(self) -> int:
        with self.engine.connect() as connection:
            count = connection.execute(
                sqlalchemy.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": self.database},
            ).scalar_one()
        self.sweeps.append(time.monotonic())
        self.terminated += count
        return count


async def run_chaos(
    worker: WorkerProcess,
    cutter: ConnectionCutter,
    rng: random.Random,
    *,
    kills: int,
    phase_s: float,
    stop: asyncio.Event,
) -> None:
    """Kill the worker `kills` times and cut connections every few seconds during `phase_s`,
    then keep restarting a worker that dies on its own until `stop`."""
    kill_at = sorted(rng.uniform(1.0, phase_s) for _ in range(kills))
    started = time.monotonic()
    next_cut = started + rng.uniform(1.0, 3.0)
    while not stop.is_set():
        now = time.monotonic()
        if kill_at and now - started >= kill_at[0]:
            kill_at.pop(0)
            worker.kill()
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            worker.start()
        if now - started < phase_s and now >= next_cut:
            await asyncio.to_thread(cutter.cut)
            next_cut = now + rng.uniform(2.0, 4.0)
        worker.ensure_running()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.2)
