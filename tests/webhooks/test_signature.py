"""Only batches SendGrid signed, within five minutes of now, are read; every other header and
signature class is a 4xx that writes nothing, and without a key the endpoint does not exist."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from intake.sendgrid_signature import load_key
from tests.webhooks.conftest import Webhook, event, new_key_pair, sign, webhook_app

SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"


async def test_a_signed_batch_is_recorded(webhook: Webhook) -> None:
    response = await webhook.post([event("open"), event("click")])

    assert response.status_code == 200, response.text
    assert response.json()["recorded"] == 2


def _headers(webhook: Webhook, body: bytes) -> dict[str, str]:
    return sign(webhook.private, body, str(int(time.time())))


BODY = json.dumps([{"sg_event_id": "x-1", "event": "open", "timestamp": 1}]).encode()


def _without(name: str) -> object:
    return lambda w, b: {k: v for k, v in _headers(w, b).items() if k != name}


def _replaced(name: str, value: str) -> object:
    return lambda w, b: _headers(w, b) | {name: value}


def _by_another_key(w: Webhook, b: bytes) -> dict[str, str]:
    return sign(new_key_pair()[0], b, str(int(time.time())))


def _for_another_body(w: Webhook, b: bytes) -> dict[str, str]:
    return sign(w.private, b + b" ", str(int(time.time())))


def _for_another_timestamp(w: Webhook, b: bytes) -> dict[str, str]:
    now = int(time.time())
    return sign(w.private, b, str(now)) | {TS: str(now - 1)}


def _truncated(w: Webhook, b: bytes) -> dict[str, str]:
    headers = _headers(w, b)
    return headers | {SIG: headers[SIG][:-8]}


def _raw_not_base64(w: Webhook, b: bytes) -> dict[str, str]:
    der = base64.b64decode(_headers(w, b)[SIG])
    return _headers(w, b) | {SIG: der.hex()}


REFUSED = {
    "no_signature": (_without(SIG), 401, SIG),
    "no_timestamp": (_without(TS), 401, TS),
    "empty_signature": (_replaced(SIG, ""), 401, SIG),
    "signature_not_base64": (_replaced(SIG, "not base64 !"), 401, SIG),
    "signature_base64_not_der": (_replaced(SIG, base64.b64encode(b"x" * 70).decode()), 401, SIG),
    "signature_hex_not_base64": (_raw_not_base64, 401, SIG),
    "truncated_signature": (_truncated, 401, SIG),
    "signed_by_another_key": (_by_another_key, 401, SIG),
    "signed_another_body": (_for_another_body, 401, SIG),
    "signed_another_timestamp": (_for_another_timestamp, 401, SIG),
    "timestamp_not_a_number": (_replaced(TS, "yesterday"), 400, TS),
    "timestamp_negative": (_replaced(TS, "-5"), 400, TS),
    "timestamp_in_milliseconds_way_off": (
        lambda w, b: sign(w.private, b, str(int(time.time() * 1000))), 403, TS),
}


@pytest.mark.parametrize(("headers", "status", "field"), REFUSED.values(), ids=REFUSED.keys())
async def test_every_bad_signature_class_is_refused_and_writes_nothing(
    webhook: Webhook, headers, status: int, field: str  # type: ignore[no-untyped-def]
) -> None:
    body = json.dumps([event("bounce", sg_event_id=f"refused-{field}-{status}")]).encode()
    before = webhook.written()

    response = await webhook.http.post("/webhooks/sendgrid", content=body,
                                       headers=headers(webhook, body))

    assert response.status_code == status, response.text
    assert field in [p["field"] for p in response.json()["problems"]]
    assert webhook.written() == before


@pytest.mark.parametrize("skew", [-301, 301, -3600, 86400])
async def test_a_timestamp_more_than_five_minutes_off_is_refused(
    webhook: Webhook, skew: int
) -> None:
    before = webhook.written()
    response = await webhook.post([event("open")], timestamp=str(int(time.time()) + skew))

    assert response.status_code == 403, response.text
    assert webhook.written() == before


@pytest.mark.parametrize("skew", [-290, 290])
async def test_a_timestamp_within_five_minutes_is_taken(webhook: Webhook, skew: int) -> None:
    response = await webhook.post([event("open")], timestamp=str(int(time.time()) + skew))

    assert response.status_code == 200, response.text


async def test_without_the_key_the_endpoint_is_not_there(
    sessions: sessionmaker[Session]
) -> None:
    private, _ = new_key_pair()
    body = json.dumps([event("bounce")]).encode()
    transport = httpx.ASGITransport(app=webhook_app(sessions, None))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        response = await http.post("/webhooks/sendgrid", content=body,
                                   headers=sign(private, body, str(int(time.time()))))

    assert response.status_code == 404


@pytest.mark.parametrize("key", ["", "not base64!", base64.b64encode(b"junk").decode(),
                                 "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"])
def test_a_key_that_is_not_a_p256_public_key_is_a_configuration_error(key: str) -> None:
    with pytest.raises(ValueError, match="LOYALLOOP_SENDGRID_WEBHOOK_KEY"):
        load_key(key)


def test_sendgrids_key_format_and_pem_both_load() -> None:
    private, public = new_key_pair()
    from cryptography.hazmat.primitives import serialization

    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    assert load_key(public).public_numbers() == load_key(pem).public_numbers()
