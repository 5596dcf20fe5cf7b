"""Property: whatever arrives at any endpoint (bytes, any JSON, a valid event with one part
broken, any header), the intake answers 2xx or a 4xx JSON refusal naming fields, never a 500,
and a refusal writes nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.intake.conftest import Intake, Rows
from tests.intake.test_shopify import ORDER

ANSWERS = {200, 202, 400, 401, 403, 404, 405, 409, 413, 422, 429}
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

leaves = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
    | st.from_regex(r"-?[0-9]{1,14}(\.[0-9]{0,6})?", fullmatch=True)  # money-like
    | st.datetimes().map(lambda d: d.isoformat())  # dates without a zone
    | st.sampled_from(["EUR", "eur", "XYZ", "2026-02-30T10:00:00Z", "ana@", "a@b.co",
                       "Europe/Lisbon", "9999-12-31T23:59:59+00:00", "NaN", "1e400", "-0", "", " "])
)
json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


def mutated(base: dict[str, Any], paths: list[tuple[Any, ...]]) -> st.SearchStrategy[Any]:
    """`base` with one part replaced by any JSON value, or removed, or a field added."""

    def apply(path: tuple[Any, ...], value: Any, remove: bool) -> dict[str, Any]:
        event = json.loads(json.dumps(base))
        target = event
        for key in path[:-1]:
            target = target[key]
        if remove and isinstance(target, dict):
            target.pop(path[-1], None)
        else:
            target[path[-1]] = value
        return event

    return st.builds(apply, st.sampled_from(paths), json_values, st.booleans())


def bodies(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    as_json = (valid | json_values).map(lambda value: json.dumps(value).encode())
    return st.binary(max_size=300) | as_json


async def check(intake: Intake, response: httpx.Response, before: Rows) -> None:
    assert response.status_code in ANSWERS, (response.status_code, response.text)
    body = response.json()
    if response.status_code >= 400:
        assert isinstance(body["error"], str)
        assert body["problems"] and all(
            isinstance(p["field"], str) and isinstance(p["problem"], str) for p in body["problems"]
        )
        assert await intake.written() == before


def purchase_paths() -> list[tuple[Any, ...]]:
    customer = [("customer", k) for k in
                ("id", "email", "first_name", "locale", "timezone", "marketing_consent", "x")]
    items = [("items", 0, k) for k in ("sku", "name", "quantity", "unit_price", "x")]
    top = [(k,) for k in ("shop_id", "order_id", "placed_at", "customer", "items", "total",
                          "currency", "referral", "x")]
    return top + customer + items


@FUZZ
@given(data=st.data())
async def test_purchases_survive_garbage(intake: Intake, data: st.DataObject):
    base = intake.purchase(f"g-{uuid.uuid4().hex[:10]}")
    body = data.draw(bodies(mutated(base, purchase_paths())))
    authorization = data.draw(st.just(f"Bearer {intake.key}") | header_text)
    before = await intake.written()
    response = await intake.http.post("/v1/purchases", content=body,
                                      headers={"Authorization": authorization})
    await check(intake, response, before)


@FUZZ
@given(data=st.data())
async def test_refunds_and_unsubscribes_survive_garbage(intake: Intake, data: st.DataObject):
    refund = {"shop_id": intake.shop_id, "order_id": "g-order", "amount": "1.00", "reason": "x",
              "refund_id": uuid.uuid4().hex}
    unsubscribe = {"shop_id": intake.shop_id, "customer_id": "c-42"}
    path, body = data.draw(st.one_of(
        st.tuples(st.just("/v1/refunds"),
                  bodies(mutated(refund, [(k,) for k in (*refund, "x")]))),
        st.tuples(st.just("/v1/unsubscribes"),
                  bodies(mutated(unsubscribe, [(k,) for k in (*unsubscribe, "x")]))),
    ))
    if not intake.has_purchase("g-order"):
        await intake.post("/v1/purchases", intake.purchase("g-order", total="500.00"))
    before = await intake.written()
    response = await intake.post(path, body)
    await check(intake, response, before)


@FUZZ
@given(data=st.data())
async def test_shopify_webhook_survives_garbage(intake: Intake, data: st.DataObject):
    paths = [(k,) for k in ORDER] + [("customer", k) for k in ORDER["customer"]] + [
        ("line_items", 0, k) for k in ORDER["line_items"][0]]
    order = dict(ORDER, id=data.draw(st.integers(1, 10**15)))
    body = data.draw(bodies(mutated(order, paths)))
    headers = intake.signed(body) if data.draw(st.booleans()) else {
        "X-Shopify-Hmac-Sha256": data.draw(header_text)}
    before = await intake.written()
    response = await intake.http.post(
        f"/webhooks/shopify/{intake.shop_id}/orders-create", content=body, headers=headers
    )
    await check(intake, response, before)


@FUZZ
@given(shop=st.text(max_size=30), order=st.text(max_size=30), method=st.sampled_from(
    ["GET", "POST", "PUT", "DELETE"]))
async def test_lifecycle_lookups_survive_garbage(intake: Intake, shop: str, order: str,
                                                 method: str):
    shop = data_or(shop, intake.shop_id)
    before = await intake.written()
    response = await intake.http.request(
        method, f"/v1/lifecycles/{quote(shop, safe='')}/{quote(order or 'x', safe='')}",
        headers=intake.auth,
    )
    await check(intake, response, before)


def data_or(value: str, default: str) -> str:
    return value if value.strip() else default
