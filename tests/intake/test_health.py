"""`/healthz` is public: it says whether the intake can take purchases and nothing more. A
shop's key also learns which dependency is down; no one learns a host, a user or a driver's
message (those go to the log, for operators)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker
from temporalio.client import Client

from intake.service import LifecycleService
from tests.intake.conftest import Intake, assert_refusal, make_intake_app

# Where nothing answers, with names a driver's message would repeat.
DEAD_DATABASE = "postgresql+psycopg2://health_user:pw@127.0.0.1:1/health_db"
DEAD_TEMPORAL = "127.0.0.1:1"
REVEALING = ("127.0.0.1", "health_user", "health_db", "connection", "refused", "port")


@pytest.fixture
async def broken(
    intake: Intake, request: pytest.FixtureRequest
) -> AsyncIterator[httpx.AsyncClient]:
    """The intake with its database, its Temporal or both (as `request.param` says)
    unreachable."""
    kit = intake.kit
    sessions, client = kit.sessions, kit.client
    if request.param in ("database", "both"):
        sessions = sessionmaker(create_engine(DEAD_DATABASE, connect_args={"connect_timeout": 2}))
    if request.param in ("temporal", "both"):
        client = await Client.connect(DEAD_TEMPORAL, lazy=True)
    service = LifecycleService(
        sessions, client, task_queue=kit.settings.lifecycle_task_queue,
        email_task_queue=kit.settings.email_task_queue, rules=kit.rules,
    )
    app = make_intake_app(kit, service, shop_keys=f"{intake.shop_id}:{intake.key}")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://intake") as http:
        yield http


async def test_up_says_ok_and_nothing_more(intake: Intake):
    response = await intake.http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    keyed = await intake.http.get("/healthz", headers=intake.auth)
    assert (keyed.status_code, keyed.json()) == (200, {"status": "ok", "problems": []})


@pytest.mark.parametrize("broken", ["database", "temporal", "both"], indirect=True)
async def test_down_says_unavailable_and_only_a_shop_learns_what(
    intake: Intake, broken: httpx.AsyncClient, request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
):
    down = request.node.callspec.params["broken"]
    dependencies = ["database", "temporal"] if down == "both" else [down]
    with caplog.at_level(logging.WARNING, logger="loyalloop.intake"):
        public = await broken.get("/healthz")
        keyed = await broken.get("/healthz", headers=intake.auth)
    assert (public.status_code, public.json()) == (503, {"status": "unavailable"})
    assert keyed.status_code == 503
    assert keyed.json() == {"status": "unavailable", "problems": [
        {"field": dependency, "problem": "is not answering"} for dependency in dependencies]}
    for answer in (public, keyed):
        assert not [word for word in REVEALING if word in answer.text.lower()], answer.text
    assert "127.0.0.1" in caplog.text, "the operator's log keeps the driver's message"
    said = {"database": "the database is not answering", "temporal": "Temporal is not answering"}
    assert [line for line in said.values() if f"health: {line}" in caplog.text] == [
        said[dependency] for dependency in dependencies]


async def test_a_wrong_key_on_health_is_refused_like_anywhere(intake: Intake):
    response = await intake.http.get("/healthz", headers={"Authorization": "Bearer wrong"})
    assert_refusal(response, 401, "Authorization")
