"""One benchmark worker, run as its own process so its CPU time and memory are its own.

`real`: Loyalloop's workers exactly as `worker.py` builds them (lifecycles, database activities,
email sends to the outbox). `baseline`: the minimal workflow with no-op activities.
Prints `ready <pid>` once polling, stops cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack

from temporalio.client import Client
from temporalio.worker import Worker

from bench.baseline import BaselineLifecycle, noop


async def main(args: argparse.Namespace) -> None:
    client = await Client.connect(args.address)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    with ThreadPoolExecutor(max_workers=32) as executor:
        async with AsyncExitStack() as stack:
            for worker in _workers(client, args, executor):
                await stack.enter_async_context(worker)
            print(f"ready {os.getpid()}", flush=True)
            await stop.wait()
    print(f"database {ROUND_TRIPS['statements']} {ROUND_TRIPS['commits']}", flush=True)


ROUND_TRIPS = {"statements": 0, "commits": 0}


def _count_round_trips() -> None:
    """Statements and commits the activities send to the database (pool pings not included)."""
    from sqlalchemy import Engine, event

    def statement(*_: object) -> None:
        ROUND_TRIPS["statements"] += 1

    def commit(*_: object) -> None:
        ROUND_TRIPS["commits"] += 1

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)


def _workers(
    client: Client, args: argparse.Namespace, executor: ThreadPoolExecutor
) -> list[Worker]:
    from worker import build_workers, workflow_runner

    if args.kind == "baseline":
        # The same sandbox settings as Loyalloop's worker: the gap measured is the workflow's.
        return [
            Worker(client, task_queue=args.task_queue, workflows=[BaselineLifecycle],
                   activities=[noop], activity_executor=executor,
                   workflow_runner=workflow_runner(), max_cached_workflows=args.max_cached)
        ]
    from database.session import make_engine, make_sessionmaker
    from settings import Settings

    settings = Settings(
        temporal_address=args.address, database_url=args.database_url,
        lifecycle_task_queue=args.task_queue, email_task_queue=args.email_task_queue,
        sendgrid_api_key=None, send_rate_per_second=args.send_rate,
    )
    _count_round_trips()
    sessions = make_sessionmaker(make_engine(settings.database_url.get_secret_value()))
    return build_workers(client, sessions, settings, executor, max_cached_workflows=args.max_cached)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.worker_process")
    parser.add_argument("kind", choices=["real", "baseline"])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--email-task-queue", default="bench-emails")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--max-cached", type=int, default=1000)
    parser.add_argument("--send-rate", type=float, default=100_000.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
