"""`loyalloop dev`'s settings reach the commands run beside it, and every default follows the
working directory (not the source tree): other terminals need not export what dev chose, a dev
that was killed leaves nothing that misleads them, and an explicit variable still wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from cli.dev import _banner, dev, write_dev_env
from cli.main import main
from cli.temporal import cli_environment
from settings import DATA_DIR, DEV_ENV, Settings, get_settings
from tests.cli.shell import clean_environment, loyalloop


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own, with none of the engineer's settings."""
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_API_KEY", "DATABASE_URL", "LOYALLOOP_DAY_SECONDS",
                 "LOYALLOOP_TEMPORAL_UI", "LOYALLOOP_PUBLIC_URL", "LOYALLOOP_FROM_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _dev_settings(here: Path) -> Settings:
    return Settings(temporal_address="localhost:17777", temporal_ui_url="http://localhost:18888",
                    database_url=f"sqlite:///{here / 'data' / 'app.db'}", day_seconds=2,
                    public_url="http://127.0.0.1:18000")


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_defaults_follow_the_working_directory(here: Path) -> None:
    default = Settings().database_url.get_secret_value()
    assert default == f"sqlite:///{here / '.loyalloop' / 'loyalloop.db'}"
    [data_dir] = [p for p in dev.params if p.name == "data_dir"]
    assert Path(data_dir.default).resolve() == here / ".loyalloop"  # type: ignore[arg-type]


def test_the_commands_use_a_running_devs_settings(here: Path) -> None:
    (here / ".env").write_text("TEMPORAL_API_KEY=for-the-cloud\nTEMPORAL_ADDRESS=cloud.example:7233"
                               "\nLOYALLOOP_FROM_EMAIL=a@shop.example\n")
    write_dev_env(here / DEV_ENV, _dev_settings(here))

    settings = get_settings()
    assert (settings.temporal_address, settings.temporal_ui_url, settings.day_seconds) == (
        "localhost:17777", "http://localhost:18888", 2)
    assert settings.database_url.get_secret_value() == f"sqlite:///{here / 'data' / 'app.db'}"
    assert settings.public_url == "http://127.0.0.1:18000"
    assert settings.temporal_api_key is None, "dev's local Temporal got the cloud's API key"
    assert settings.from_email == "a@shop.example"  # the rest of `.env` still applies
    assert cli_environment(settings) == {"TEMPORAL_ADDRESS": "localhost:17777",
                                         "TEMPORAL_NAMESPACE": "default"}


def test_an_exported_variable_wins_over_devs(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_dev_env(here / DEV_ENV, _dev_settings(here))
    monkeypatch.setenv("LOYALLOOP_DAY_SECONDS", "86400")
    assert get_settings().day_seconds == 86400
    assert get_settings().temporal_address == "localhost:17777"


def test_a_dev_that_is_gone_leaves_nothing_that_counts(here: Path) -> None:
    write_dev_env(here / DEV_ENV, _dev_settings(here))
    text = (here / DEV_ENV).read_text()
    (here / DEV_ENV).write_text(text.replace(f"PID={os.getpid()}",
                                             f"PID={_dead_pid()}"))
    assert get_settings().temporal_address == "localhost:7233"
    assert get_settings().day_seconds == 86400


def test_a_second_dev_from_the_same_folder_is_refused(here: Path) -> None:
    write_dev_env(here / DEV_ENV, _dev_settings(here))
    result = CliRunner().invoke(main, ["dev"])
    assert result.exit_code == 1
    assert "another `loyalloop dev` runs from this folder" in result.output


def test_the_demo_purchase_is_placed_when_asked_for_and_kept_here(tmp_path: Path) -> None:
    asked = datetime.now(UTC).replace(microsecond=0)
    done = loyalloop("demo-purchase", cwd=tmp_path, env=clean_environment())
    assert done.returncode == 0, done.stderr
    purchase = json.loads(done.stdout)
    assert asked <= datetime.fromisoformat(purchase["placed_at"]) <= datetime.now(UTC)
    assert (purchase["shop_id"], purchase["order_id"]) == ("demo", "1001")
    assert (tmp_path / DATA_DIR / "loyalloop.db").exists()

    written = loyalloop("demo-purchase", "--out", "p.json", cwd=tmp_path, env=clean_environment())
    assert written.stdout == "wrote p.json (order 1001)\n"
    assert json.loads((tmp_path / "p.json").read_text())["customer"]["id"] == "c-1001"
    missing = loyalloop("demo-purchase", "--out", "no/such/p.json", cwd=tmp_path,
                        env=clean_environment())
    assert missing.returncode == 2 and missing.stdout == ""
    assert "--out no/such/p.json: No such file or directory" in missing.stderr


def test_the_banner_names_the_database_without_its_password(here: Path) -> None:
    settings = Settings(
        database_url=SecretStr("postgresql+psycopg2://app:pw-000008@db.example/loyalloop"),
        shop_keys=SecretStr("demo:demo-key-local-only"),
    )
    banner = _banner(settings, here / DATA_DIR, 8000, 8233, "1001")
    assert "App database      postgresql+psycopg2://app:***@db.example/loyalloop\n" in banner
    assert "pw-000008" not in banner
