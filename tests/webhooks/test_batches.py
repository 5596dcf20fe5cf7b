"""A batch is all or nothing and each event counts once: a replay changes nothing, a malformed
batch writes nothing (on SQLite and PostgreSQL), unknown event types are kept and otherwise
ignored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.webhooks.conftest import Webhook, event


async def test_a_replayed_batch_changes_nothing(webhook: Webhook) -> None:
    webhook.customer()
    sending = webhook.email(status="sending")
    batch = [event("processed", email_id=str(sending), shop_id=webhook.shop_id,
                   sg_message_id="m1.filter"),
             event("bounce", email_id=str(sending), shop_id=webhook.shop_id, type="bounce"),
             *(event("deferred", email_id=str(sending), shop_id=webhook.shop_id)
               for _ in range(3))]
    first = await webhook.post(batch)
    after_first = (webhook.written(), [e.sg_event_id for e in webhook.events()],
                   webhook.suppression().deferrals_in_a_row, webhook.row(sending).sent_at)

    again = await webhook.post(batch)

    assert first.json()["recorded"] == 5 and again.status_code == 200
    assert again.json()["recorded"] == 0
    assert (webhook.written(), [e.sg_event_id for e in webhook.events()],
            webhook.suppression().deferrals_in_a_row, webhook.row(sending).sent_at) == after_first


async def test_an_event_repeated_within_a_batch_counts_once(webhook: Webhook) -> None:
    webhook.customer()
    deferred = event("deferred", email_id=str(webhook.email()), shop_id=webhook.shop_id)

    response = await webhook.post([deferred, deferred, deferred])

    assert response.json()["recorded"] == 1
    assert webhook.suppression().deferrals_in_a_row == 1


async def test_unknown_event_types_are_kept_and_otherwise_ignored(webhook: Webhook) -> None:
    webhook.customer()
    email_id = webhook.email(status="sending")
    unknown = event("machine_opened", email_id=str(email_id), shop_id=webhook.shop_id,
                    url="https://example.com/?email=ana@example.com")

    response = await webhook.post([unknown])

    assert response.status_code == 200
    kept = [e for e in webhook.events() if e.sg_event_id == unknown["sg_event_id"]]
    assert [(e.event, e.email_send_id, e.detail) for e in kept] == [
        ("machine_opened", email_id, {})]
    assert webhook.row(email_id).status == "sending"
    assert webhook.suppression() is None


def _good() -> dict[str, Any]:
    return event("bounce", type="bounce", shop_id="s", email_id="1")


MALFORMED: dict[str, tuple[bytes, str]] = {
    "not_json": (b"[{]", "body"),
    "not_utf8": (b'[{"event": "\xff"}]', "body"),
    "an_object_not_an_array": (json.dumps(_good()).encode(), "body"),
    "an_event_not_an_object": (json.dumps([_good(), "bounce"]).encode(), "body[1]"),
    "no_sg_event_id": (json.dumps([_good(), {**_good(), "sg_event_id": None}]).encode(),
                       "body[1].sg_event_id"),
    "sg_event_id_a_number": (json.dumps([{**_good(), "sg_event_id": 7}]).encode(),
                             "body[0].sg_event_id"),
    "sg_event_id_too_long": (json.dumps([{**_good(), "sg_event_id": "x" * 101}]).encode(),
                             "body[0].sg_event_id"),
    "no_event_type": (json.dumps([{k: v for k, v in _good().items() if k != "event"}]).encode(),
                      "body[0].event"),
    "timestamp_a_string": (json.dumps([{**_good(), "timestamp": "1700000000"}]).encode(),
                           "body[0].timestamp"),
    "timestamp_a_float": (json.dumps([{**_good(), "timestamp": 1.5}]).encode(),
                          "body[0].timestamp"),
    "timestamp_true": (json.dumps([{**_good(), "timestamp": True}]).encode(), "body[0].timestamp"),
    "timestamp_negative": (json.dumps([{**_good(), "timestamp": -1}]).encode(),
                           "body[0].timestamp"),
    "timestamp_past_year_6000": (json.dumps([{**_good(), "timestamp": 10**12}]).encode(),
                                 "body[0].timestamp"),
    "email_a_list": (json.dumps([{**_good(), "email": ["a@b.c"]}]).encode(), "body[0].email"),
    "sg_message_id_an_object": (json.dumps([{**_good(), "sg_message_id": {}}]).encode(),
                                "body[0].sg_message_id"),
    "nested_too_deeply": (b"[" * 100_000 + b"]" * 100_000, "body"),
}


@pytest.mark.parametrize(("body", "field"), MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_batch_is_a_400_that_writes_nothing(
    webhook: Webhook, body: bytes, field: str
) -> None:
    webhook.customer()
    email_id = webhook.email(status="sending")
    good = [event("delivered", email_id=str(email_id), shop_id=webhook.shop_id),
            event("spamreport", email_id=str(email_id), shop_id=webhook.shop_id)]
    # the good events first: a batch is refused whole, not up to its first bad event
    if body.startswith(b"[{") and field.startswith("body["):
        index = int(field[5:field.index("]")])
        items = json.loads(body)
        body = json.dumps(good + items).encode()
        field = f"body[{index + len(good)}]" + field[field.index("]") + 1:]
    before = webhook.written()

    response = await webhook.post(None, body=body)

    assert response.status_code == 400, response.text
    assert field in [p["field"] for p in response.json()["problems"]]
    assert webhook.written() == before
    assert webhook.row(email_id).status == "sending"


async def test_an_empty_batch_is_taken(webhook: Webhook) -> None:
    response = await webhook.post([])
    assert (response.status_code, response.json()["recorded"]) == (200, 0)


async def test_a_batch_of_sendgrids_largest_size_is_taken(webhook: Webhook) -> None:
    """SendGrid posts up to 768 KB at a time, more than the intake's other bodies may be."""
    batch = [event("open", useragent="Mozilla/5.0 " + "x" * 600) for _ in range(1200)]
    assert len(json.dumps(batch)) > 768 * 1024

    response = await webhook.post(batch)

    assert (response.status_code, response.json()["recorded"]) == (200, 1200), response.text



async def test_a_batch_over_2_mib_is_a_413_that_writes_nothing(webhook: Webhook) -> None:
    """SendGrid's batches are at most 768 KB; a body past the webhook's 2 MiB is refused before
    it is parsed, signed or not."""
    webhook.customer()
    email_id = webhook.email(status="sending")
    good = event("delivered", email_id=str(email_id), shop_id=webhook.shop_id)
    body = json.dumps([good] + [event("open", padding="x" * 1000) for _ in range(2200)]).encode()
    assert len(body) > 2 * 1024 * 1024
    before = webhook.written()

    response = await webhook.post(None, body=body)

    assert response.status_code == 413, response.text
    assert "body" in [p["field"] for p in response.json()["problems"]]
    assert webhook.written() == before
    assert webhook.row(email_id).status == "sending"
