"""Support and the shop read each email's delivery and engagement: `inspect`, the lifecycle
API (its own shop only) and `loyalloop outbox`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from cli.main import main
from cli.support import print_timeline
from intake.app import create_app
from settings import get_settings
from tests.lifecycle_kit import LifecycleKit
from tests.webhooks.conftest import event, new_key_pair, sign


async def test_delivery_and_engagement_show_per_email(
    kit: LifecycleKit, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = new_key_pair()
    key, other_key = uuid.uuid4().hex, uuid.uuid4().hex
    settings = kit.settings.model_copy(update={
        "sendgrid_webhook_key": SecretStr(public),
        "shop_keys": SecretStr(f"{kit.shop_id}:{key},other-shop:{other_key}")})
    handle = await kit.buy(await kit.placed_now("7101"))
    await kit.skip(3)
    [day_1] = kit.emails(handle.id)
    now = int(time.time())
    args = {"email_id": str(day_1.id), "shop_id": kit.shop_id}
    body = json.dumps([event("processed", timestamp=now - 9, **args),
                       event("delivered", timestamp=now - 8, **args),
                       event("open", **args), event("open", **args),
                       event("click", url="https://x.example/", **args)]).encode()
    transport = httpx.ASGITransport(app=create_app(settings, kit.service))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        posted = await http.post("/webhooks/sendgrid", content=body,
                                 headers=sign(private, body, str(now)))
        assert posted.status_code == 200, posted.text
        mine = await http.get(f"/v1/lifecycles/{kit.shop_id}/7101",
                              headers={"Authorization": f"Bearer {key}"})
        theirs = await http.get(f"/v1/lifecycles/{kit.shop_id}/7101",
                                headers={"Authorization": f"Bearer {other_key}"})

    assert theirs.status_code == 403
    [email] = [e for e in mine.json()["emails"] if e["step"] == "day_1"]
    assert email["delivery"] == {
        "status": "delivered",
        "delivered_at": email["delivery"]["delivered_at"],
        "opens": 2, "clicks": 1,
        "events": {"click": 1, "delivered": 1, "open": 2, "processed": 1},
    }
    assert email["delivery"]["delivered_at"].startswith(
        time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now - 8)))

    print_timeline(mine.json())  # what `loyalloop inspect` prints of the same record
    assert "SendGrid: delivered" in capsys.readouterr().out

    url = kit.sessions.kw["bind"].url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        listed = await asyncio.to_thread(CliRunner().invoke, main, ["outbox", "--limit", "50"])
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0, listed.output
    assert "SendGrid: delivered" in listed.output and "2 opens, 1 click" in listed.output
    await handle.result()
