"""`loyalloop` as a shell runs it: a real process, its stdout and stderr kept apart.

Click's CliRunner swaps `sys.stdout`, so it never sees what the SDK's Rust core writes to file
descriptor 1; only a real process shows what `loyalloop … --json | jq .` gets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "loyalloop"
# Settings of the engineer's own shell would leak into the run; each test passes its own.
_OWN = ("LOYALLOOP_", "TEMPORAL_", "SENDGRID_", "DATABASE_URL")


def clean_environment(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN)}
    return env | settings


def loyalloop(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    command = (
        [str(SCRIPT)] if SCRIPT.exists()
        else [sys.executable, "-c", "from cli.main import run; run()"]
    )
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env if env is not None else clean_environment(),
        capture_output=True, text=True, timeout=timeout,
    )
