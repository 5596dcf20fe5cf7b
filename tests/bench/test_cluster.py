"""The intake figure gives the Temporal server cores of its own: every thread moves, and back."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from bench.cluster import server_apart


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
