"""The intake figure gives the Temporal server cores of its own: every thread moves, and back.
The lifecycle figure also reports what the server and PostgreSQL spent: read from /proc."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
import sqlalchemy

from bench.cluster import SharedCpuMeter, server_apart
from tests.conftest import POSTGRES_ADMIN_URL, _postgres_available


def allowed(pid: int) -> set[str]:
    return {
        next(line.split()[1] for line in (task / "status").read_text().splitlines()
             if line.startswith("Cpus_allowed_list"))
        for task in Path(f"/proc/{pid}/task").iterdir()
    }


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to split")
def test_server_apart_pins_every_thread_and_restores_them() -> None:
    before = allowed(os.getpid())
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)  # a thread the split must move too
    thread.start()
    server = subprocess.Popen(["sleep", "30"])
    try:
        with server_apart(server) as cores:
            assert cores.startswith("server on cores ")
            assert len(allowed(server.pid)) == 1 and len(allowed(os.getpid())) == 1
            assert allowed(server.pid).isdisjoint(allowed(os.getpid()))
        assert allowed(os.getpid()) == before
        assert allowed(server.pid) == before
    finally:
        server.kill()
        server.wait()
        stop.set()
        thread.join()


@pytest.mark.skipif(not _postgres_available(), reason="PostgreSQL is not reachable")
@pytest.mark.skipif(sqlalchemy.make_url(POSTGRES_ADMIN_URL).host not in ("127.0.0.1", "localhost"),
                    reason="PostgreSQL runs on another machine: its CPU is not in this /proc")
def test_shared_cpu_meter_counts_the_server_and_postgresql() -> None:
    """A busy stand-in for the server and a CPU-heavy query both show in the meter; an idle
    stretch shows (almost) nothing."""
    busy = subprocess.Popen(["python3", "-c", "while True: pass"])
    engine = sqlalchemy.create_engine(POSTGRES_ADMIN_URL)
    try:
        idle = SharedCpuMeter(server_pid=None)
        idle.start()
        assert idle.stop().server_s == 0.0
        meter = SharedCpuMeter(busy.pid)
        meter.start()
        with engine.connect() as connection:  # about a second of a backend's CPU
            connection.execute(sqlalchemy.text(
                "SELECT sum(sqrt(x)) FROM generate_series(1, 8000000) AS x"))
        spent = meter.stop()
        assert spent.server_s > 0.1
        assert spent.database_s > 0.1
    finally:
        busy.kill()
        busy.wait()
        engine.dispose()
