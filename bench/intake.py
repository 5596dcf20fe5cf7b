"""Purchases accepted per second: the HTTP intake (`loyalloop api` on uvicorn, in its own
process, storing each purchase and starting its lifecycle) against `client.start_workflow` of
the same workflow with the same input. No worker polls these task queues: only acceptance is
measured, and the workflows the server holds are counted to prove every accepted purchase
started its lifecycle."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from bench.cluster import ROOT, free_port, stop_process
from intake.service import workflow_id_for
from workflows import search
from workflows.contract import LifecycleInput
from workflows.lifecycle import PurchaseLifecycle
from workflows.rules import LifecycleRules

SHOP_KEY = "bench-key"
CONCURRENCY = 32


@dataclass
class Intake:
    purchases: int
    intake_per_s: float
    direct_per_s: float
    accepted: int
    started_by_intake: int
    started_directly: int

    @property
    def ratio(self) -> float:
        return self.intake_per_s / self.direct_per_s


def purchase_body(shop_id: str, order: str) -> dict[str, object]:
    return {
        "shop_id": shop_id, "order_id": order, "placed_at": "2026-11-20T10:00:00Z",
        "customer": {"id": f"c-{order}", "email": f"{order}@bench.example", "first_name": "Ana",
                     "locale": "en", "timezone": "Europe/Lisbon", "marketing_consent": True},
        "items": [{"sku": "KETTLE-1", "name": "Pour-over kettle", "quantity": 1,
                   "unit_price": "49.00"}],
        "total": "49.00", "currency": "EUR", "referral": {"code": "BENCH10"},
    }


async def each(count: int, action) -> float:  # type: ignore[no-untyped-def]
    """Run `action(i)` for every i, CONCURRENCY at a time; returns completions per second."""
    queue = iter(range(count))

    async def caller() -> None:
        for index in queue:
            await action(index)

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    return count / (time.perf_counter() - began)


def start_api(
    address: str, database_url: str, shop_id: str, task_queue: str, profile: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = os.environ | {
        "TEMPORAL_ADDRESS": address, "DATABASE_URL": database_url,
        "LOYALLOOP_SHOP_KEYS": f"{shop_id}:{SHOP_KEY}", "LOYALLOOP_TASK_QUEUE": task_queue,
        "LOYALLOOP_DAY_SECONDS": "86400",
    }
    loyalloop = Path(sys.executable).parent / "loyalloop"
    command = [str(loyalloop), "api", "--host", "127.0.0.1", "--port", str(port)]
    if profile is not None:
        spy = Path(sys.executable).parent / "py-spy"
        command = [str(spy), "record", "--gil", "--nonblocking", "-r", "100", "-f", "speedscope",
                   "-o", str(profile), "--", *command]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    return process, f"http://127.0.0.1:{port}"


async def wait_healthy(http: httpx.AsyncClient, process: subprocess.Popen[bytes]) -> None:
    for _ in range(240):
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"`loyalloop api` exited: {error[-2000:]}")
        try:
            if (await http.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise RuntimeError("`loyalloop api` did not become healthy")


def _stop_api(process: subprocess.Popen[bytes], profiled: bool) -> None:
    if not profiled:
        stop_process(process)
        return
    # Stop uvicorn, not py-spy, so py-spy writes the profile as its program exits.
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stop_process(process)


async def count_started(client: Client, task_queue: str, expected: int) -> int:
    """Visibility lags the start by a moment: wait for it to settle."""
    found = 0
    for _ in range(40):
        found = (await client.count_workflows(f"TaskQueue = '{task_queue}'")).count
        if found >= expected:
            return found
        await asyncio.sleep(0.25)
    return found


async def run(
    client: Client, address: str, database_url: str, count: int, profile: Path | None = None
) -> Intake:
    run_id = uuid.uuid4().hex[:8]
    shop_id = f"intake-{run_id}"
    http_queue, direct_queue = f"intake-http-{run_id}", f"intake-direct-{run_id}"
    process, base_url = start_api(address, database_url, shop_id, http_queue, profile)
    accepted = 0
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    try:
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60,
                                     headers={"Authorization": f"Bearer {SHOP_KEY}"}) as http:
            await wait_healthy(http, process)
            for warm in range(CONCURRENCY):  # connections and first-call costs, not counted
                await http.post("/v1/purchases", json=purchase_body(shop_id, f"warm{warm}"))

            async def post(index: int) -> None:
                nonlocal accepted
                response = await http.post("/v1/purchases",
                                           json=purchase_body(shop_id, f"h{index:06d}"))
                if response.status_code != 202:
                    raise RuntimeError(f"intake answered {response.status_code}: {response.text}")
                accepted += 1

            intake_per_s = await each(count, post)
    finally:
        _stop_api(process, profiled=profile is not None)

    rules = LifecycleRules()

    async def start(index: int) -> None:
        order = f"d{index:06d}"
        await client.start_workflow(
            PurchaseLifecycle.run, LifecycleInput(shop_id, order, rules, "bench-emails"),
            id=workflow_id_for(shop_id, order), task_queue=direct_queue,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(search.SHOP_ID, shop_id),
                SearchAttributePair(search.CUSTOMER_ID, f"c-{order}"),
                SearchAttributePair(search.LIFECYCLE_STAGE, "starting"),
            ]),
        )

    direct_per_s = await each(count, start)
    return Intake(
        purchases=count, intake_per_s=intake_per_s, direct_per_s=direct_per_s, accepted=accepted,
        started_by_intake=await count_started(client, http_queue, accepted + CONCURRENCY)
        - CONCURRENCY,
        started_directly=await count_started(client, direct_queue, count),
    )
