"""Every kind of bad input gets its 4xx, names the field, and writes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from intake.limits import MAX_BODY_BYTES
from tests.intake.conftest import Intake, assert_refusal


def _customer(intake: Intake, **fields: Any) -> dict[str, Any]:
    return intake.purchase()["customer"] | fields


def _item(**fields: Any) -> list[dict[str, Any]]:
    return [{"sku": "KETTLE-1", "name": "Kettle", "quantity": 1, "unit_price": "49.00"} | fields]


BAD_PURCHASES = [  # (why, changes to a valid event, field named)
    ("missing field", lambda i: {"total": None}, "total"),
    ("extra field", lambda i: {"coupon": "X"}, "coupon"),
    ("negative money", lambda i: {"total": "-1.00"}, "total"),
    ("non-decimal money", lambda i: {"total": "12,50"}, "total"),
    ("float money", lambda i: {"total": 49.0}, "total"),
    ("infinite money", lambda i: {"total": "Infinity"}, "total"),
    ("unknown currency", lambda i: {"currency": "XYZ"}, "currency"),
    ("impossible date", lambda i: {"placed_at": "2026-02-30T10:00:00Z"}, "placed_at"),
    ("date without zone", lambda i: {"placed_at": "2026-11-20T10:00:00"}, "placed_at"),
    ("invalid email", lambda i: {"customer": _customer(i, email="ana@")}, "customer.email"),
    ("unknown time zone", lambda i: {"customer": _customer(i, timezone="Mars/Base")},
     "customer.timezone"),
    ("quantity as text", lambda i: {"items": _item(quantity="1")}, "items.0.quantity"),
    ("no items", lambda i: {"items": []}, "items"),
    ("order id with spaces", lambda i: {"order_id": "10 01"}, "order_id"),
    ("referral code with spaces", lambda i: {"referral": {"code": "MAYA 10"}}, "referral.code"),
]


@pytest.fixture
async def nothing_written(intake: Intake) -> AsyncIterator[None]:
    before = await intake.written()
    yield
    assert await intake.written() == before


@pytest.mark.parametrize(
    ("why", "change", "field"), BAD_PURCHASES, ids=[b[0] for b in BAD_PURCHASES]
)
async def test_bad_purchase_is_422_naming_the_field(
    intake: Intake, nothing_written: None, why: str, change: Any, field: str
):
    event = intake.purchase()
    event.update(change(intake))
    event = {k: v for k, v in event.items() if v is not None}
    assert_refusal(await intake.post("/v1/purchases", event), 422, field)


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b"\xff\xfe{}", b"[" * 100_000])
async def test_malformed_json_is_400(intake: Intake, nothing_written: None, body: bytes):
    for path in ("/v1/purchases", "/v1/refunds", "/v1/unsubscribes"):
        assert_refusal(await intake.post(path, body), 400, "body")


async def test_json_that_is_not_an_object_is_422(intake: Intake, nothing_written: None):
    assert_refusal(await intake.post("/v1/purchases", [1, 2]), 422, "body")


async def test_every_problem_is_named_at_once(intake: Intake, nothing_written: None):
    event = intake.purchase(total="-1", currency="EURO")
    response = await intake.post("/v1/purchases", event)
    assert_refusal(response, 422)
    assert {p["field"] for p in response.json()["problems"]} == {"total", "currency"}


async def test_bad_refund_and_unsubscribe_are_422(intake: Intake, nothing_written: None):
    refund = {"shop_id": intake.shop_id, "order_id": "1", "amount": "0"}
    assert_refusal(await intake.post("/v1/refunds", refund), 422, "amount")
    refund["amount"] = "1e400"
    assert_refusal(await intake.post("/v1/refunds", refund), 422, "amount")
    unsubscribe = {"shop_id": intake.shop_id, "customer_id": ""}
    assert_refusal(await intake.post("/v1/unsubscribes", unsubscribe), 422, "customer_id")


async def test_body_over_256_kib_is_413_by_its_length(intake: Intake, nothing_written: None):
    event = intake.purchase()
    event["customer"]["first_name"] = "A" * MAX_BODY_BYTES
    assert_refusal(await intake.post("/v1/purchases", event), 413, "body")


async def test_streamed_body_over_256_kib_is_413_without_a_length(
    intake: Intake, nothing_written: None
):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"shop_id": "' + intake.shop_id.encode() + b'", "order_id": "'
        for _ in range(300):
            yield b"9" * 1024
        yield b'"}'

    response = await intake.http.post("/v1/purchases", content=chunks(), headers=intake.auth)
    assert "content-length" not in response.request.headers
    assert_refusal(response, 413, "body")


async def test_body_just_under_the_limit_is_read(intake: Intake, nothing_written: None):
    body = b'{"padding": "' + b" " * (MAX_BODY_BYTES - 200) + b'"}'
    assert len(body) <= MAX_BODY_BYTES
    assert_refusal(await intake.post("/v1/purchases", body), 422, "padding")


async def test_unknown_path_and_wrong_method_answer_json(intake: Intake):
    assert_refusal(await intake.http.get("/v1/nothing-here", headers=intake.auth), 404, "path")
    assert_refusal(await intake.http.get("/v1/purchases", headers=intake.auth), 405, "path")


async def test_bad_content_length_is_400(intake: Intake, nothing_written: None):
    response = await intake.http.post(
        "/v1/purchases", content=b"{}", headers=intake.auth | {"Content-Length": "abc"}
    )
    assert_refusal(response, 400, "Content-Length")
