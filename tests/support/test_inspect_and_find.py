"""`inspect` reads a lifecycle while it runs and after it closed; `find` lists a customer's, a
creator's or an email address's lifecycles (the address only ever looked up in the database)."""

from __future__ import annotations

import pytest

from intake.timeline import inspect_lifecycle
from support.errors import ActionRefused
from support.find import Criteria, find_lifecycles
from tests.lifecycle_kit import LifecycleKit

STEPS = ["day_1", "day_7", "referral_prompt", "day_21"]


async def test_inspect_a_running_then_a_closed_lifecycle(kit: LifecycleKit):
    creator = kit.add_creator("MAYA")
    handle = await kit.buy(await kit.placed_now("7001", referral=creator))
    await kit.skip(2)

    running = await inspect_lifecycle(kit.sessions, kit.client, kit.shop_id, "7001",
                                      "http://ui.example:8233/")
    assert running["workflow_status"] == "RUNNING"
    assert running["lifecycle"]["stage"] == "onboarding"
    assert running["lifecycle"]["next_step"] == "day_7"
    assert running["lifecycle"]["next_at"] > running["placed_at"]
    [done] = running["steps"]
    assert (done["step"], done["outcome"]) == ("day_1", "sent") and done["at"]
    assert running["temporal_ui"] == (
        f"http://ui.example:8233/namespaces/default/workflows/{handle.id}"
    )

    await handle.result()
    closed = await inspect_lifecycle(kit.sessions, kit.client, kit.shop_id, "7001")

    assert closed["workflow_status"] == "COMPLETED" and closed["closed_at"]
    assert closed["lifecycle"]["stage"] == "completed"
    assert closed["lifecycle"]["next_step"] is None
    assert closed["summary"]["emails_sent"] == 4
    assert [(s["step"], s["outcome"]) for s in closed["steps"]] == [(s, "sent") for s in STEPS]
    assert all(s["at"] for s in closed["steps"])
    for email in closed["emails"]:
        assert email["status"] == "sent" and len(email["template_hash"]) == 64
        assert email["template"] and email["provider_message_id"].startswith("outbox-")
    [credit] = closed["credits"]
    assert (credit["milestone"], credit["referrer"], credit["amount"], credit["status"]) == (
        "referral", creator, "5.00", "approved",
    )


async def test_inspect_an_unknown_order_is_none(kit: LifecycleKit):
    assert await inspect_lifecycle(kit.sessions, kit.client, kit.shop_id, "missing") is None


async def test_find_by_customer_creator_and_email(kit: LifecycleKit):
    creator = kit.add_creator("LEO")
    first = await kit.buy(await kit.placed_now("7101", "c-7", referral=creator,
                                               email="Ana.Maria+shop@gmail.com"))
    other = await kit.buy(await kit.placed_now("7102", "c-8"))
    await first.result()
    await other.result()
    second = await kit.buy(await kit.placed_now("7103", "c-7", email="anamaria@gmail.com"))

    async def ids(**criteria: str) -> list[tuple[str, str | None]]:
        rows = await find_lifecycles(kit.sessions, kit.client,
                                     Criteria(shop_id=kit.shop_id, **criteria))
        return [(row["workflow_id"], row["status"]) for row in rows]

    both = [(first.id, "COMPLETED"), (second.id, "RUNNING")]
    assert await ids(customer="c-7") == both
    assert await ids(email="anamaria@gmail.com") == both
    assert await ids(email="ANA.MARIA+other@googlemail.com") == both
    assert await ids(creator=creator.lower()) == [(first.id, "COMPLETED")]
    assert await ids(customer="c-9") == []
    await second.result()


@pytest.mark.parametrize(("criteria", "field"), [
    (Criteria(), None),
    (Criteria(customer="c-1", email="a@b.example"), None),
    (Criteria(customer="c-1' OR ShopId!='x"), "customer"),
    (Criteria(email="not-an-address"), "email"),
])
async def test_find_needs_exactly_one_well_formed_criterion(
    kit: LifecycleKit, criteria: Criteria, field: str | None
):
    with pytest.raises(ActionRefused) as refused:
        await find_lifecycles(kit.sessions, kit.client, criteria)
    assert refused.value.field == field


def test_visibility_query_carries_ids_only():
    assert Criteria(customer="c-42", shop_id="acme").visibility_query() == (
        "CustomerId='c-42' AND ShopId='acme'"
    )
    assert Criteria(creator="maya10").visibility_query() == "CreatorCode='MAYA10'"
    assert Criteria(email="ana@example.com").visibility_query() is None
