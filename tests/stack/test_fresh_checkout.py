"""A fresh checkout has no `.loyalloop/` folder: the commands the docs tell a newcomer to run
first work anyway (run as an operator runs them, each on a database folder that does not exist)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
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


def test_actor_defaults_to_the_login_name_where_user_is_unset(monkeypatch: pytest.MonkeyPatch):
    """Containers and cron jobs often have no $USER: an audited action still knows who acted."""
    import pwd

    from cli.acting import _login_name
    from cli.support import cancel

    monkeypatch.delenv("USER", raising=False)
    monkeypatch.delenv("LOGNAME", raising=False)
    assert _login_name() == pwd.getpwuid(os.getuid()).pw_name
    monkeypatch.setenv("USER", "ana.support")
    assert _login_name() == "ana.support"
    [actor] = [p for p in cancel.params if p.name == "actor"]
    assert actor.get_default(click.Context(cancel), call=True) == "ana.support"
