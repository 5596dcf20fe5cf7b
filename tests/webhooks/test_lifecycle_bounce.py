"""The loop closes in a real lifecycle (time-skipping server, real workers): a bounce SendGrid
reports for the Day 1 email stops the customer's next marketing emails, each skipped with the
reason, checked at the moment of sending."""

from __future__ import annotations

import json
import time

import httpx
from pydantic import SecretStr

from intake.app import create_app
from tests.lifecycle_kit import LifecycleKit
from tests.webhooks.conftest import event, new_key_pair, sign


async def test_a_customer_who_bounced_is_skipped_with_the_reason(kit: LifecycleKit) -> None:
    private, public = new_key_pair()
    settings = kit.settings.model_copy(update={"sendgrid_webhook_key": SecretStr(public)})
    app = create_app(settings, kit.service)
    handle = await kit.buy(await kit.placed_now("7001"))
    await kit.skip(3)
    [day_1] = kit.emails(handle.id)
    assert (day_1.step, day_1.status) == ("day_1", "sent")

    body = json.dumps([event("bounce", type="bounce", email_id=str(day_1.id),
                             shop_id=kit.shop_id)]).encode()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        response = await http.post("/webhooks/sendgrid", content=body,
                                   headers=sign(private, body, str(int(time.time()))))
    assert response.status_code == 200, response.text
    summary = await handle.result()

    assert [(e.step, e.status, e.skip_reason) for e in kit.emails(handle.id)] == [
        ("day_1", "sent", None),
        ("day_7", "skipped", "suppressed_bounce"),
        ("referral_prompt", "skipped", "suppressed_bounce"),
        ("day_21", "skipped", "suppressed_bounce"),
    ]
    assert summary.emails_skipped == {"suppressed_bounce": 3}
