"""A fresh checkout has no `.loyalloop/` folder: the commands the docs tell a newcomer to run
first work anyway (run as an operator runs them, each on a database folder that does not exist)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LOYALLOOP = Path(sys.executable).parent / "loyalloop"


@pytest.mark.parametrize(("args", "says"), [
    (["db", "upgrade"], "database is up to date"),
    (["outbox"], "the outbox is empty"),
    (["creators", "add", "MAYA1", "--name", "Maya", "--email", "maya@example.com"],
     "creator MAYA1 added"),
    (["creators", "list"], ""),
])
def test_first_commands_create_the_data_folder(tmp_path: Path, args: list[str], says: str):
    folder = tmp_path / "not-yet" / ".loyalloop"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALLOOP_", "DATABASE_"))}
    done = subprocess.run([str(LOYALLOOP), *args], capture_output=True, text=True, timeout=60,
                          env=env | {"DATABASE_URL": f"sqlite:///{folder}/loyalloop.db"},
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == says
    assert (folder / "loyalloop.db").exists()
