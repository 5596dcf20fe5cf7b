"""The real worker (`python worker.py`) as a child process, to be killed with SIGKILL and started
again: no graceful shutdown, in-flight activities and workflow tasks simply vanish.

Each start is an incarnation with a name of its own, which its PostgreSQL connections carry as
their `application_name` (libpq reads `PGAPPNAME`): the database's audit trail and the
connection cutter then say which incarnation wrote or lost what (tests/faults/verdict.py)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1
# Logged by worker.py once both task queues are polled.
POLLING = "worker polling"


def _die_with_parent() -> None:
    """A test run killed by its timeout must not leave a worker polling behind it."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Incarnation:
    """One start of the worker: from `started_at` until it was `killed` (SIGKILL), `crashed`
    (died on its own) or `stopped` (SIGTERM at the end), wall-clock times."""

    number: int
    app: str
    started_at: float
    ended_at: float | None = None
    end: str | None = None
    polling: bool = False


@dataclass
class WorkerProcess:
    env: dict[str, str]
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    kills: list[float] = field(default_factory=list)
    incarnations: list[Incarnation] = field(default_factory=list)
    app_prefix: str = "faults-worker"

    @property
    def starts(self) -> int:
        return len(self.incarnations)

    @property
    def crashes(self) -> int:
        return sum(i.end == "crashed" for i in self.incarnations)

    def start(self) -> None:
        number = self.starts + 1
        app = f"{self.app_prefix}-{number}"
        log = self.log_path(number).open("wb")
        self.incarnations.append(Incarnation(number, app, time.time()))
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT,
            env={**os.environ, **self.env, "PGAPPNAME": app},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def _ended(self, end: str) -> None:
        incarnation = self.incarnations[-1]
        incarnation.ended_at, incarnation.end = time.time(), end
        incarnation.polling = POLLING in self.log_path(incarnation.number).read_text(
            errors="replace"
        )

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or a lost machine would."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.kills.append(time.time())
            self.process.wait()
            self._ended("killed")
        self.process.wait()

    def ensure_running(self) -> None:
        """Start again a worker that died on its own (e.g. its database connection was cut
        while it applied migrations at start); the verdict asks why it died."""
        if self.process is not None and self.process.poll() is not None:
            self._ended("crashed")
            self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
                self._ended("stopped")
            except subprocess.TimeoutExpired:
                self.kill()

    def log_path(self, number: int) -> Path:
        return self.log_dir / f"worker-{number}.log"

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.log_dir.glob("worker-*.log"))
        )
