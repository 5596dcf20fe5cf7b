"""A namespace without Loyalloop's search attributes is a missing setup step, not a server that is
down: `loyalloop temporal setup` registers them (idempotent), the worker and the intake refuse to
start in one line naming it, and the intake's 503 says so. Run on a real dev server whose
namespaces start bare, with the commands as an operator runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_client import temporal_binary
from temporal_setup import manual_commands, missing, required
from tests.intake.conftest import make_intake_app
from tests.lifecycle_kit import LifecycleKit

LOYALLOOP = Path(sys.executable).parent / "loyalloop"
NAMESPACES = ("bare-setup", "bare-worker", "bare-api", "bare-intake")
MISSING_LINE = ("error: Temporal namespace {} lacks the search attributes ShopId, CustomerId, "
                "CreatorCode, LifecycleStage: run `loyalloop temporal setup` once")


@pytest.fixture(scope="module")
async def bare() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of this module's own: its namespaces have no custom search attributes."""
    extra = [arg for namespace in NAMESPACES for arg in ("--namespace", namespace)]
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary("temporal"), dev_server_extra_args=extra
    )
    yield environment
    await environment.shutdown()


def address(environment: WorkflowEnvironment) -> str:
    return environment.client.service_client.config.target_host


def loyalloop(tmp_path: Path, environment: WorkflowEnvironment, namespace: str,
              *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALLOOP_", "TEMPORAL_"))}
    env |= {"TEMPORAL_ADDRESS": address(environment), "TEMPORAL_NAMESPACE": namespace,
            "DATABASE_URL": f"sqlite:///{tmp_path}/app.db",
            "LOYALLOOP_LINK_SECRET": "a-real-link-secret-for-tests",
            "LOYALLOOP_SHOP_KEYS": "acme:a-shop-key-of-20-chars"}
    return subprocess.run([str(LOYALLOOP), *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


async def test_setup_registers_the_attributes_once_and_is_safe_to_repeat(
    bare: WorkflowEnvironment, tmp_path: Path
):
    client = await Client.connect(address(bare), namespace="bare-setup")
    assert await missing(client, "bare-setup") == required()

    first = loyalloop(tmp_path, bare, "bare-setup", "temporal", "setup")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"registered search attribute {name} (Keyword) on namespace bare-setup"
        for name in required()
    ]
    assert await missing(client, "bare-setup") == []

    again = loyalloop(tmp_path, bare, "bare-setup", "temporal", "setup")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [
        f"search attribute {name} already registered on namespace bare-setup"
        for name in required()
    ]


@pytest.mark.parametrize(("command", "namespace"),
                         [("worker", "bare-worker"), ("api", "bare-api")])
def test_worker_and_intake_refuse_a_namespace_not_set_up(
    bare: WorkflowEnvironment, tmp_path: Path, command: str, namespace: str
):
    args = [command, *(["--port", "0"] if command == "api" else [])]
    done = loyalloop(tmp_path, bare, namespace, *args)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == MISSING_LINE.format(namespace)


async def test_the_intakes_503_names_the_missing_setup_step(
    bare: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path
):
    """An intake already running when the attributes go missing (another namespace, a reset
    cluster) answers 503 with the cause, not "Temporal is not answering"."""
    own = WorkflowEnvironment.from_client(
        await Client.connect(address(bare), namespace="bare-intake")
    )
    async with LifecycleKit.running(own, sessions, templates_dir) as kit:
        key = uuid.uuid4().hex
        app = make_intake_app(kit, shop_keys=f"{kit.shop_id}:{key}",
                              temporal_namespace="bare-intake")
        event = kit.purchase(f"o-{uuid.uuid4().hex[:8]}").model_dump(mode="json")
        event.pop("referral")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://intake") as http:
            answer = await http.post("/v1/purchases", json=event,
                                     headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 503, answer.text
    assert answer.json()["problems"] == [{
        "field": "service",
        "problem": "Temporal namespace bare-intake lacks Loyalloop's search attributes: "
                   "an operator runs `loyalloop temporal setup`",
    }]


async def test_where_setup_is_not_allowed_it_prints_the_commands(
    env: WorkflowEnvironment, tmp_path: Path
):
    """The time-skipping test server refuses to list search attributes, as a server that will
    not let this client manage the namespace does."""
    done = loyalloop(tmp_path, env, "default", "temporal", "setup")
    assert done.returncode == 1, done.stdout
    lines = done.stderr.strip().splitlines()
    assert lines[0] == ("error: this client may not register search attributes on namespace "
                        "default; run these instead:")
    assert lines[1:] == manual_commands("default", required(), cloud=False)


def test_the_commands_for_temporal_cloud_use_tcld():
    assert manual_commands("acme.a1b2c", ["ShopId"], cloud=True) == [
        'tcld namespace search-attributes add --namespace acme.a1b2c '
        '--search-attribute "ShopId=Keyword"'
    ]
    assert manual_commands("default", ["ShopId"], cloud=False) == [
        "temporal operator search-attribute create --namespace default --name ShopId "
        "--type Keyword"
    ]


async def test_a_short_lived_command_ends_with_its_own_exit_code(
    env: WorkflowEnvironment, tmp_path: Path
):
    """A command holding a Temporal client used to abort now and then in CPython's finalization
    (SIGABRT, "PyGILState_Release: thread state must be current", temporalio/sdk-python#300):
    3 of 40 runs here. `cli.main.run` ends the process once its output is flushed."""
    def once(index: int) -> subprocess.CompletedProcess[str]:
        (tmp_path / str(index)).mkdir()
        return loyalloop(tmp_path / str(index), env, "default", "temporal", "setup")

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(once, range(40)))
    assert [run.returncode for run in runs] == [1] * 40, next(
        run.stderr for run in runs if run.returncode != 1
    )
    assert all(run.stderr.splitlines()[1:] == manual_commands("default", required(), cloud=False)
               for run in runs)
