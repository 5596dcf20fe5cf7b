"""The worker and the intake refuse to start on configuration that would make them unsafe (the
public dev link secret, a short shop key, a Shopify secret without its shop's domain), in one
line naming the setting, before they connect to anything. Run as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings import Settings
from tests.intake.conftest import Intake, make_intake_app

LOYALLOOP = Path(sys.executable).parent / "loyalloop"
LINK_SECRET = "a-real-link-secret-for-tests"
SHOP_KEYS = "acme:a-shop-key-of-20-chars"


def start(tmp_path: Path, command: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALLOOP_", "TEMPORAL_"))}
    env |= {"TEMPORAL_ADDRESS": "127.0.0.1:1", "DATABASE_URL": f"sqlite:///{tmp_path}/app.db"}
    args = [str(LOYALLOOP), command, *(["--port", "0"] if command == "api" else [])]
    return subprocess.run(args, env=env | settings, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)


def refused_with(done: subprocess.CompletedProcess[str], start_of_line: str) -> None:
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[-1]] and lines[-1].startswith(start_of_line), done.stderr


@pytest.mark.parametrize("command", ["worker", "api"])
@pytest.mark.parametrize("secret", [None, "dev-only-link-secret", "short"])
def test_no_real_link_secret_no_start(tmp_path: Path, command: str, secret: str | None):
    link = {} if secret is None else {"LOYALLOOP_LINK_SECRET": secret}
    done = start(tmp_path, command, LOYALLOOP_SHOP_KEYS=SHOP_KEYS, **link)
    refused_with(done, "error: configuration: LOYALLOOP_LINK_SECRET")
    assert not (tmp_path / "app.db").exists(), "refused before touching the database"


@pytest.mark.parametrize("command", ["worker", "api"])
def test_a_real_configuration_gets_past_the_checks(tmp_path: Path, command: str):
    done = start(tmp_path, command, LOYALLOOP_LINK_SECRET=LINK_SECRET,
                 LOYALLOOP_SHOP_KEYS=SHOP_KEYS, LOYALLOOP_SHOPIFY_SECRETS="acme:shpss_1",
                 LOYALLOOP_SHOPIFY_DOMAINS="acme:Acme.myshopify.com")
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot reach Temporal")


@pytest.mark.parametrize(("settings", "start_of_line"), [
    ({"LOYALLOOP_SHOP_KEYS": "acme:a-long-enough-key,other:short"},
     "error: configuration: LOYALLOOP_SHOP_KEYS: the key of shop 'other' is 5 characters"),
    ({"LOYALLOOP_SHOPIFY_SECRETS": "acme:shpss_1"},
     "error: configuration: LOYALLOOP_SHOPIFY_DOMAINS: shop 'acme' has a Shopify secret"),
    ({"LOYALLOOP_SHOPIFY_SECRETS": "acme:shpss_1", "LOYALLOOP_SHOPIFY_DOMAINS": "acme:a b"},
     "error: configuration: LOYALLOOP_SHOPIFY_DOMAINS: 'a b' (shop 'acme') is not a host name"),
])
def test_the_intake_refuses_unsafe_shop_settings(
    tmp_path: Path, settings: dict[str, str], start_of_line: str
):
    done = start(tmp_path, "api", **{"LOYALLOOP_LINK_SECRET": LINK_SECRET,
                                     "LOYALLOOP_SHOP_KEYS": SHOP_KEYS} | settings)
    refused_with(done, start_of_line)
    assert "short" not in done.stderr, "a key is never printed"


async def test_an_app_is_never_built_with_a_short_shop_key(intake: Intake):
    with pytest.raises(ValueError, match="LOYALLOOP_SHOP_KEYS: the key of shop 'acme' is 15"):
        make_intake_app(intake.kit, shop_keys=f"acme:{'k' * 15}")
    make_intake_app(intake.kit, shop_keys=f"acme:{'k' * 16}")


def test_the_dev_secret_is_refused_only_by_the_start_up_checks():
    """`loyalloop dev`, `simulate`, the tests and the benchmark build their settings directly
    and run the worker and intake themselves: only the commands check."""
    settings = Settings(shop_keys="", link_secret="dev-only-link-secret")
    assert settings.link_secret.get_secret_value() == "dev-only-link-secret"
    with pytest.raises(ValueError, match="LOYALLOOP_LINK_SECRET"):
        settings.check_for_worker()
