"""Every machine-readable output is exactly its document on stdout, as a shell pipe sees it.

A real lifecycle runs on the test server; then `loyalloop` runs as its own process (Temporal's
Rust core writes to file descriptor 1 of that process, which CliRunner never sees), its whole
stdout is parsed and only stderr may carry logs. `simulate --json` is covered in
test_simulate.py."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from tests.cli.shell import clean_environment, loyalloop
from tests.lifecycle_kit import LifecycleKit


async def _run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = await asyncio.to_thread(loyalloop, *args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    return done


def _environment(env: WorkflowEnvironment, sessions: sessionmaker[Session]) -> dict[str, str]:
    return clean_environment(
        TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        DATABASE_URL=sessions.kw["bind"].url.render_as_string(hide_password=False),
    )


async def test_json_and_csv_outputs_parse_whole(
    env: WorkflowEnvironment, kit: LifecycleKit, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    code = kit.add_creator("MAYA")
    purchase = await kit.placed_now("o1", "c-machine", referral=code)
    handle = await kit.buy(purchase)
    await kit.skip(2)
    shell = _environment(env, sessions)

    inspected: dict[str, Any] = json.loads(
        (await _run(shell, tmp_path, "inspect", kit.shop_id, "o1", "--json")).stdout
    )
    assert inspected["workflow_id"] == handle.id
    found = json.loads(
        (await _run(shell, tmp_path, "find", "--customer", "c-machine", "--shop", kit.shop_id,
                    "--json")).stdout
    )
    assert [row["order_id"] for row in found] == ["o1"]
    ledger = json.loads(
        (await _run(shell, tmp_path, "credits", "--creator", code, "--format", "json")).stdout
    )
    assert [(row["milestone"], row["referrer_code"]) for row in ledger] == [("referral", code)]
    rows = list(csv.DictReader(io.StringIO(
        (await _run(shell, tmp_path, "credits", "--creator", code, "--format", "csv")).stdout
    )))
    assert [(row["milestone"], row["amount"]) for row in rows] == [("referral", "5.00")]
    summary = json.loads(
        (await _run(shell, tmp_path, "credits", "summary", "--creator", code, "--json")).stdout
    )
    assert [row["creator"] for row in summary] == [code]
