"""`loyalloop dev` as a newcomer runs it: the real command, the real Temporal dev server, a demo
purchase stamped when it is sent over HTTP, the other commands finding dev through
`.loyalloop/dev.env` (no TEMPORAL_ADDRESS, DATABASE_URL or day length set by hand), the outbox
filling up, Ctrl-C, and a second run that keeps the data. Everything under the working
directory's `.loyalloop/`, not the source tree's."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cli.dev import DEMO_KEY
from tests.cli.shell import clean_environment, loyalloop

LOYALLOOP = Path(sys.executable).parent / "loyalloop"
STEPS = {"day_1", "day_7", "referral_prompt", "day_21"}
LATER_STEPS = STEPS - {"day_1"}


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
    """`dev` with no --data-dir, run from the folder holding `data_dir`."""
    ports = {"port": _free_port(), "temporal": _free_port(), "ui": _free_port()}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(LOYALLOOP), "dev", "--day-seconds", "1",
             "--port", str(ports["port"]), "--temporal-port", str(ports["temporal"]),
             "--ui-port", str(ports["ui"])],
            stdout=out, stderr=subprocess.STDOUT, cwd=data_dir.parent,
            env=clean_environment(PYTHONUNBUFFERED="1"),  # the banner, as it is printed
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


def _in_another_terminal(data_dir: Path, *args: str) -> str:
    """A command run beside dev from the same folder, with none of dev's settings exported."""
    done = loyalloop(*args, cwd=data_dir.parent)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _demo_purchase(data_dir: Path) -> str:
    """What the banner says to send: `loyalloop demo-purchase | curl … --data @-`."""
    asked = datetime.now(UTC).replace(microsecond=0)
    body = _in_another_terminal(data_dir, "demo-purchase")
    placed = datetime.fromisoformat(json.loads(body)["placed_at"])
    assert asked <= placed <= datetime.now(UTC), "the demo purchase is not stamped when asked for"
    return body


def _post(ports: dict[str, int], body: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{ports['port']}/v1/purchases",
        headers={"Authorization": f"Bearer {DEMO_KEY}", "Content-Type": "application/json"},
        content=body, timeout=30,
    )


@pytest.mark.timeout(300)
def test_dev_runs_a_whole_lifecycle_stops_cleanly_and_keeps_its_data(tmp_path: Path) -> None:
    if not LOYALLOOP.exists():
        pytest.skip(f"{LOYALLOOP} is not installed (pip install -e .)")
    data_dir, log = tmp_path / ".loyalloop", tmp_path / "dev.log"

    with running_dev(data_dir, log) as ports:
        banner = log.read_text()
        assert "demo-purchase | curl" in banner and ".loyalloop/dev.env" in banner, banner
        assert _answers(f"http://localhost:{ports['ui']}/"), "the Temporal Web UI does not answer"
        time.sleep(3)  # three lifecycle days after dev started: a stale stamp would show
        body = _demo_purchase(data_dir)
        first = _post(ports, body)
        assert first.status_code == 202, first.text
        workflow_id = first.json()["workflow_id"]
        assert workflow_id == "purchase-demo-1001"
        again = _post(ports, body)
        assert (again.status_code, again.json()["workflow_id"]) == (200, workflow_id)
        # Another terminal's `purchase` reaches dev's Temporal and database, on dev's day length:
        # on real days its emails would not come within the wait below (its day 1 may be past
        # due already, a lifecycle day being a second).
        (tmp_path / "second.json").write_text(_demo_purchase(data_dir))
        started = _in_another_terminal(data_dir, "purchase", "second.json")
        assert started.strip() == "started: purchase-demo-1002"
        _until(lambda: _outbox(data_dir / "loyalloop.db", workflow_id) == STEPS, 90,
               "every onboarding email in the outbox")
        _until(lambda: _outbox(data_dir / "loyalloop.db", "purchase-demo-1002") >= LATER_STEPS,
               60, "the second lifecycle's emails in the outbox")
        record = json.loads(_in_another_terminal(data_dir, "inspect", "demo", "1001", "--json"))
        assert record["temporal_ui"].startswith(f"http://localhost:{ports['ui']}/")
    assert not (data_dir / "dev.env").exists(), "dev left its settings behind after Ctrl-C"

    with running_dev(data_dir, log) as ports:
        def described() -> str:
            return _in_another_terminal(  # Temporal's CLI, on dev's address from dev.env
                data_dir, "temporal", "workflow", "describe", "--workflow-id", workflow_id
            )

        # The lifecycle's closing summary may still be due when the first run stopped: the
        # restarted worker finishes it.
        def completed() -> str:
            description = described()
            return description if "COMPLETED" in description else ""

        description = _until(completed, 60, "the lifecycle to complete after the restart")
        assert "\"emails_sent\":4" in description, description
        assert _outbox(data_dir / "loyalloop.db", workflow_id) == STEPS
        second = _post(ports, _demo_purchase(data_dir))
        assert second.status_code == 202, "a second run should offer a fresh demo order"
        assert second.json()["workflow_id"] == "purchase-demo-1003"
