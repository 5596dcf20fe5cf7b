"""The lifecycle API links to the Temporal UI the operator configured (LOYALLOOP_TEMPORAL_UI),
not always to a local dev server's."""

from __future__ import annotations

import uuid

import httpx

from tests.intake.conftest import make_intake_app
from tests.lifecycle_kit import LifecycleKit


async def test_the_lifecycle_api_links_to_the_configured_temporal_ui(kit: LifecycleKit):
    key = uuid.uuid4().hex
    app = make_intake_app(kit, shop_keys=f"{kit.shop_id}:{key}",
                          temporal_ui_url="https://temporal.acme.example/")
    handle = await kit.buy(await kit.placed_now("ui-1"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://intake") as http:
        answer = await http.get(f"/v1/lifecycles/{kit.shop_id}/ui-1",
                                headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["temporal_ui"] == (
        f"https://temporal.acme.example/namespaces/default/workflows/{handle.id}"
    )
