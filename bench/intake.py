"""Purchases accepted per second: the HTTP intake (`loyalloop api` on uvicorn, in its own
process, storing each purchase and starting its lifecycle) against `client.start_workflow` of
the same workflow with the same input. No worker polls these task queues: only acceptance is
measured, and the workflows the server holds are counted to prove every accepted purchase
started its lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from bench.cluster import ROOT, free_port, stop_process, usage
from bench.http_load import Connection
from intake.store import workflow_id_for
from workflows import search
from workflows.contract import LifecycleInput
from workflows.lifecycle import PurchaseLifecycle
from workflows.rules import LifecycleRules

SHOP_KEY = "bench-key-not-secret"  # at least 16 characters, as `loyalloop api` requires
CONCURRENCY = 32


@dataclass
class Intake:
    purchases: int
    intake_per_s: float
    direct_per_s: float
    accepted: int
    started_by_intake: int
    started_directly: int
    intake_cpu_ms: float

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


async def each(indexes: range, action: Callable[[int, int], Awaitable[None]]) -> float:
    """Run `action(caller, i)` for every i, by CONCURRENCY callers numbered from 0; returns the
    seconds taken. An action that fails stops the run: its purchase was not accepted."""
    queue = iter(indexes)

    async def caller(number: int) -> None:
        for index in queue:
            await action(number, index)

    began = time.perf_counter()
    await asyncio.gather(*(caller(number) for number in range(CONCURRENCY)))
    return time.perf_counter() - began


def start_api(
    address: str, database_url: str, shop_id: str, task_queue: str, profile: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = os.environ | {
        "TEMPORAL_ADDRESS": address, "DATABASE_URL": database_url,
        "LOYALLOOP_SHOP_KEYS": f"{shop_id}:{SHOP_KEY}", "LOYALLOOP_TASK_QUEUE": task_queue,
        "LOYALLOOP_DAY_SECONDS": "86400",
        # Its own, since `loyalloop api` refuses the built-in one; no email leaves the bench.
        "LOYALLOOP_LINK_SECRET": "bench-link-secret-not-secret",
    } | (extra_env or {})
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


def _api_pid(process: subprocess.Popen[bytes], profiled: bool) -> int:
    """uvicorn's process: under py-spy, py-spy's child."""
    if not profiled:
        return process.pid
    return int(Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()[0])


def _stop_api(process: subprocess.Popen[bytes], profiled: bool) -> None:
    if not profiled:
        stop_process(process)
        return
    # Stop uvicorn, not py-spy, so py-spy writes the profile as its program exits.
    os.kill(_api_pid(process, profiled=True), signal.SIGINT)
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
    """`count` purchases each way, in mirrored halves (direct, HTTP, HTTP, direct): the dev server
    slows as it holds more workflows, and whichever ran first would look faster."""
    run_id = uuid.uuid4().hex[:8]
    shop_id = f"intake-{run_id}"
    http_queue, direct_queue = f"intake-http-{run_id}", f"intake-direct-{run_id}"
    rules = LifecycleRules()

    async def start(_: int, index: int) -> None:
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

    process, base_url = start_api(address, database_url, shop_id, http_queue, profile)
    half, accepted = count // 2, 0
    try:
        async with httpx.AsyncClient(base_url=base_url) as http:
            await wait_healthy(http, process)
        await each(range(-CONCURRENCY, 0), start)  # first-call costs, not counted
        direct_s = await each(range(half), start)
        # connections opened now: uvicorn closes keep-alive connections idle for 5 s
        async with contextlib.AsyncExitStack() as stack:
            connections = [
                await stack.enter_async_context(
                    Connection(base_url, {"Authorization": f"Bearer {SHOP_KEY}"}))
                for _ in range(CONCURRENCY)
            ]

            async def post(caller: int, index: int) -> None:
                nonlocal accepted
                response = await connections[caller].post_json(
                    "/v1/purchases", purchase_body(shop_id, f"h{index:06d}"))
                if response.status != 202:
                    raise RuntimeError(f"intake answered {response.status}: {response.body!r}")
                accepted += index >= 0

            await each(range(-CONCURRENCY, 0), post)  # first-call costs, not counted
            api = _api_pid(process, profiled=profile is not None)
            cpu_before = usage(api).cpu_s
            intake_s = await each(range(count), post)
            api_cpu_s = usage(api).cpu_s - cpu_before
        direct_s += await each(range(half, count), start)
    finally:
        _stop_api(process, profiled=profile is not None)
    return Intake(
        purchases=count, intake_per_s=count / intake_s, direct_per_s=count / direct_s,
        accepted=accepted, intake_cpu_ms=api_cpu_s / count * 1000,
        started_by_intake=await count_started(client, http_queue, accepted + CONCURRENCY)
        - CONCURRENCY,
        started_directly=await count_started(client, direct_queue, count + CONCURRENCY)
        - CONCURRENCY,
    )
