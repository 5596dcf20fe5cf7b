"""`loyalloop dev` as a newcomer runs it: the real command, the real Temporal dev server, the
demo purchase over HTTP, the outbox filling up, Ctrl-C, and a second run that keeps the data."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from cli.dev import DEMO_KEY

LOYALLOOP = Path(sys.executable).parent / "loyalloop"
STEPS = {"day_1", "day_7", "referral_prompt", "day_21"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _processes_using(data_dir: Path) -> list[int]:
    """Processes whose command line names the data folder (the dev server's --db-filename)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(data_dir).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _until(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def running_dev(data_dir: Path, log: Path) -> Iterator[dict[str, int]]:
    ports = {"port": _free_port(), "temporal": _free_port(), "ui": _free_port()}
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LOYALLOOP_", "TEMPORAL_", "SENDGRID_", "DATABASE_URL"))}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(LOYALLOOP), "dev", "--day-seconds", "1", "--data-dir", str(data_dir),
             "--port", str(ports["port"]), "--temporal-port", str(ports["temporal"]),
             "--ui-port", str(ports["ui"])],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=data_dir.parent,
        )
    try:
        _until(lambda: _answers(f"http://127.0.0.1:{ports['port']}/healthz") or process.poll(),
               60, "the intake to answer")
        assert process.poll() is None, log.read_text()
        yield ports
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert process.wait(timeout=40) == 0, log.read_text()
        assert "stopped" in log.read_text()
        assert _processes_using(data_dir) == [], "Ctrl-C left a process behind"
    finally:
        if process.poll() is None:
            process.kill()
        for pid in _processes_using(data_dir):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _outbox(database: Path, workflow_id: str) -> set[str]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT s.step FROM email_outbox o JOIN email_send s ON s.id = o.email_send_id "
            "WHERE s.workflow_id = ?", (workflow_id,)
        ).fetchall()
    return {step for (step,) in rows}


def _post_demo(ports: dict[str, int], data_dir: Path) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{ports['port']}/v1/purchases",
        headers={"Authorization": f"Bearer {DEMO_KEY}", "Content-Type": "application/json"},
        content=(data_dir / "demo-purchase.json").read_bytes(), timeout=30,
    )


@pytest.mark.timeout(240)
def test_dev_runs_a_whole_lifecycle_stops_cleanly_and_keeps_its_data(tmp_path: Path) -> None:
    if not LOYALLOOP.exists():
        pytest.skip(f"{LOYALLOOP} is not installed (pip install -e .)")
    data_dir, log = tmp_path / "data", tmp_path / "dev.log"

    with running_dev(data_dir, log) as ports:
        assert _answers(f"http://localhost:{ports['ui']}/"), "the Temporal Web UI does not answer"
        first = _post_demo(ports, data_dir)
        assert first.status_code == 202, first.text
        workflow_id = first.json()["workflow_id"]
        assert workflow_id == "purchase-demo-1001"
        again = _post_demo(ports, data_dir)
        assert (again.status_code, again.json()["workflow_id"]) == (200, workflow_id)
        _until(lambda: _outbox(data_dir / "loyalloop.db", workflow_id) == STEPS, 90,
               "every onboarding email in the outbox")

    with running_dev(data_dir, log) as ports:
        def described() -> str:
            listed = subprocess.run(
                [str(Path(sys.executable).parent / "temporal"), "workflow", "describe",
                 "--address", f"localhost:{ports['temporal']}", "--workflow-id", workflow_id],
                capture_output=True, text=True, timeout=30,
            )
            assert listed.returncode == 0, listed.stderr
            return listed.stdout

        # The lifecycle's closing summary may still be due when the first run stopped: the
        # restarted worker finishes it.
        def completed() -> str:
            description = described()
            return description if "COMPLETED" in description else ""

        description = _until(completed, 60, "the lifecycle to complete after the restart")
        assert "\"emails_sent\":4" in description, description
        assert _outbox(data_dir / "loyalloop.db", workflow_id) == STEPS
        second = _post_demo(ports, data_dir)
        assert second.status_code == 202, "a second run should offer a fresh demo order"
        assert second.json()["workflow_id"] == "purchase-demo-1002"
