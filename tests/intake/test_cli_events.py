"""`loyalloop purchase | refund | unsubscribe`: the same validation as the HTTP intake, a
one-line error and a non-zero exit for bad input, the real service for good input."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from intake.store import workflow_id_for
from settings import get_settings
from tests.intake.conftest import Intake


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each run reads its own environment (the settings are cached per process)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def loyalloop(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def assert_one_line_error(result: Result, *words: str) -> None:
    assert result.exit_code not in (0, None), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]


def write(tmp_path: Path, content: str | bytes | Any) -> str:
    path = tmp_path / "purchase.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


VALID = {
    "shop_id": "acme", "order_id": "1001", "placed_at": "2026-11-20T10:00:00Z",
    "customer": {"id": "c-42", "email": "ana@example.com", "marketing_consent": True},
    "items": [{"sku": "KETTLE-1", "name": "Kettle", "quantity": 1, "unit_price": "49.00"}],
    "total": "49.00", "currency": "EUR",
}


@pytest.mark.parametrize(("content", "words"), [
    ("{", ["not valid JSON", "line 1"]),
    (b"\xff\xfe\x00garbage", ["not UTF-8"]),
    ("[" * 100_000, ["nested too deeply"]),
    ("[1, 2]", ["body"]),
    (VALID | {"total": "-1", "currency": "EURO"}, ["total: must not be negative", "currency:"]),
    (VALID | {"customer": {"id": "c-42", "email": "ana@"}}, ["customer.email"]),
    (VALID | {"placed_at": "2026-02-30T10:00:00Z"}, ["placed_at"]),
    (VALID | {"total": 49.0}, ["total", "float"]),
])
def test_bad_purchase_file_is_one_line(tmp_path: Path, content: Any, words: list[str]):
    assert_one_line_error(loyalloop("purchase", write(tmp_path, content)), *words)


def test_missing_purchase_file_is_one_line(tmp_path: Path):
    assert_one_line_error(loyalloop("purchase", str(tmp_path / "nope.json")), "nope.json")


@pytest.mark.parametrize(("args", "words"), [
    (["refund", "acme", "1001", "abc"], ["amount", "'abc'"]),
    (["refund", "acme", "1001", "-5"], ["amount", "negative"]),
    (["refund", "acme", "1001", "0"], ["amount", "more than zero"]),
    (["refund", "acme", "1001", "NaN"], ["amount"]),
    (["refund", "bad shop", "1001", "5"], ["shop_id"]),
    (["refund", "acme", "1001", "5", "--reason", "x" * 501], ["reason"]),
    (["unsubscribe", "acme", ""], ["customer_id"]),
    (["unsubscribe", "acme", "c 42"], ["customer_id"]),
])
def test_bad_refund_or_unsubscribe_is_one_line(args: list[str], words: list[str]):
    reason = [] if "--reason" in args else ["--reason", "test"]
    assert_one_line_error(loyalloop(*args, *reason, "--actor", "tester"), *words)


@pytest.mark.parametrize("args", [
    ["refund", "acme", "1001"], ["refund", "acme", "1001", "5"], ["unsubscribe", "acme"],
    ["purchase"], ["refund", "acme", "1001", "5", "--reason", "x", "--actor", "a", "extra"],
])
def test_usage_mistakes_are_one_line(args: list[str]):
    assert_one_line_error(loyalloop(*args), "loyalloop")


def test_temporal_unreachable_is_one_line(tmp_path: Path):
    env = {"TEMPORAL_ADDRESS": "127.0.0.1:1",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'loyalloop.db'}"}
    assert_one_line_error(loyalloop("purchase", write(tmp_path, VALID), env=env), "Temporal")


@pytest.mark.parametrize("command", [["worker"], ["api", "--port", "0"]])
def test_a_server_without_temporal_says_so_in_one_line(tmp_path: Path, command: list[str]):
    """Run as an operator runs them, in their own process: no stack trace, exit 1."""
    env = os.environ | {"TEMPORAL_ADDRESS": "127.0.0.1:1",
                        "LOYALLOOP_LINK_SECRET": "a-link-secret-for-this-test",
                        "DATABASE_URL": f"sqlite:///{tmp_path / 'loyalloop.db'}"}
    loyalloop_bin = Path(sys.executable).parent / "loyalloop"
    done = subprocess.run([str(loyalloop_bin), *command], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot reach Temporal at 127.0.0.1:1"), done.stderr


async def test_commands_reach_the_real_service(intake: Intake, tmp_path: Path):
    kit = intake.kit
    env = {
        "TEMPORAL_ADDRESS": kit.client.service_client.config.target_host,
        "DATABASE_URL": str(kit.sessions.kw["bind"].url.render_as_string(hide_password=False)),
        "LOYALLOOP_TASK_QUEUE": kit.settings.lifecycle_task_queue,
        "LOYALLOOP_EMAIL_TASK_QUEUE": kit.settings.email_task_queue,
    }
    purchase = write(tmp_path, intake.purchase("8001", total="49.00"))

    async def run(*args: str) -> Result:
        support = [] if args[0] == "purchase" else ["--reason", "asked", "--actor", "tester"]
        return await asyncio.to_thread(loyalloop, *args, *support, env=env)

    first = await run("purchase", purchase)
    started = f"started: {workflow_id_for(kit.shop_id, '8001')}"
    assert (first.exit_code, first.output.strip()) == (0, started)
    again = await run("purchase", purchase)
    assert again.exit_code == 0 and again.output.startswith("already known")

    unsubscribed = await run("unsubscribe", kit.shop_id, "c-42")
    assert unsubscribed.exit_code == 0 and "1 lifecycle" in unsubscribed.output
    assert_one_line_error(await run("refund", kit.shop_id, "8001", "50.00"), "amount", "exceeds")
    assert_one_line_error(await run("refund", kit.shop_id, "nope", "1.00"), "order_id")
    refunded = await run("refund", kit.shop_id, "8001", "10.00")
    assert refunded.exit_code == 0, refunded.output
