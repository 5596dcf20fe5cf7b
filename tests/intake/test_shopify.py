"""Shopify's orders/create webhook: signed over the raw body, mapped to a purchase."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from database.models import Purchase
from intake.store import workflow_id_for
from tests.intake.conftest import Intake, assert_refusal, make_intake_app

ORDER = json.loads((Path(__file__).parent / "shopify_orders_create.json").read_text())
DOMAIN = "ana-kettles.myshopify.com"
DOMAIN_FIELD = "X-Shopify-Shop-Domain"


@pytest.fixture
async def intake(intake: Intake) -> AsyncIterator[Intake]:
    """The shared intake, with this shop's Shopify domain configured too."""
    keys = f"{intake.shop_id}:{intake.key},{intake.other_shop}:{intake.other_key}"
    app = make_intake_app(
        intake.kit, shop_keys=keys, shopify_secrets=f"{intake.shop_id}:{intake.shopify_secret}",
        shopify_domains=f"{intake.shop_id}:{DOMAIN}",
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://intake") as http:
        yield dataclasses.replace(intake, http=http)


def webhook(intake: Intake, shop_id: str | None = None) -> str:
    return f"/webhooks/shopify/{shop_id or intake.shop_id}/orders-create"


def order(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(ORDER)
    body.update(changes)
    return body


async def deliver(intake: Intake, body: dict[str, Any] | bytes, **headers: str):  # type: ignore[no-untyped-def]
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await intake.http.post(webhook(intake), content=raw,
                                  headers=intake.signed(raw) | {DOMAIN_FIELD: DOMAIN} | headers)


def stored(intake: Intake, order_id: str) -> Purchase | None:
    with intake.kit.sessions() as session:
        return session.scalar(
            select(Purchase).where(
                Purchase.shop_id == intake.shop_id, Purchase.order_id == order_id
            )
        )


async def test_a_real_orders_create_payload_becomes_a_purchase(intake: Intake):
    response = await deliver(intake, ORDER)
    assert response.status_code == 202, response.text
    assert response.json() == {"workflow_id": workflow_id_for(intake.shop_id, "5848212734131")}

    purchase = stored(intake, "5848212734131")
    assert purchase is not None
    assert (purchase.total, purchase.currency) == (Decimal("84.00"), "EUR")
    assert purchase.placed_at == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    assert purchase.referral_code == "MAYA10"
    assert [(i["sku"], i["name"], i["quantity"], i["unit_price"]) for i in purchase.items] == [
        ("KETTLE-1", "Pour-over kettle - Matte black", 1, "49.00"),
        ("variant-44112233440002", "Paper filters (100)", 2, "22.00"),
    ]
    customer = purchase.customer
    assert (customer.customer_id, customer.email, customer.first_name, customer.locale) == (
        "7212387647667", "ana.silva@example.com", "Ana", "pt-PT")
    assert customer.marketing_consent is True
    await intake.kit.client.get_workflow_handle(response.json()["workflow_id"]).describe()

    redelivered = await deliver(intake, ORDER)
    assert (redelivered.status_code, redelivered.json()) == (200, response.json())


@pytest.mark.parametrize(("consent", "buyer_accepts", "expected"), [
    ({"state": "unsubscribed"}, True, False),
    ({"state": "subscribed"}, False, True),
    (None, True, True),
    (None, False, False),
])
async def test_consent_is_the_customers_state_else_buyer_accepts_marketing(
    intake: Intake, consent: dict[str, str] | None, buyer_accepts: bool, expected: bool
):
    body = order(id=1, buyer_accepts_marketing=buyer_accepts)
    body["customer"] = {k: v for k, v in body["customer"].items() if k != "email_marketing_consent"}
    if consent:
        body["customer"]["email_marketing_consent"] = consent
    assert (await deliver(intake, body)).status_code == 202
    purchase = stored(intake, "1")
    assert purchase is not None and purchase.customer.marketing_consent is expected


async def test_a_discount_code_that_cannot_be_a_referral_code_is_not_one(intake: Intake):
    body = order(id=2, discount_codes=[{"code": "SUMMER SALE", "amount": "5.00"}])
    assert (await deliver(intake, body)).status_code == 202
    purchase = stored(intake, "2")
    assert purchase is not None and purchase.referral_code is None


async def test_an_order_without_a_customer_is_acknowledged_and_not_followed(intake: Intake):
    before = await intake.written()
    body = order(id=3, customer=None, email=None, contact_email=None)
    response = await deliver(intake, body)
    assert response.status_code == 200 and response.json()["workflow_id"] is None
    assert await intake.written() == before


SIGNATURES = ["missing", "empty", "garbage", "truncated", "other secret", "other body"]


@pytest.mark.parametrize("kind", SIGNATURES)
async def test_a_wrong_missing_or_truncated_signature_is_401(intake: Intake, kind: str):
    raw = json.dumps(ORDER).encode()
    headers = intake.signed(raw)
    field = "X-Shopify-Hmac-Sha256"
    headers[field] = {
        "empty": "",
        "garbage": "bm90IGEgc2lnbmF0dXJl",
        "truncated": headers[field][:-4],
        "other secret": intake.signed(raw, "not-the-secret")[field],
        "other body": intake.signed(raw + b" ")[field],
    }.get(kind, "")
    if kind == "missing":
        del headers[field]
    before = await intake.written()
    response = await intake.http.post(webhook(intake), content=raw, headers=headers)
    assert_refusal(response, 401, field)
    assert await intake.written() == before


@pytest.mark.parametrize("signature", ["wrong", "missing"])
async def test_a_shop_without_a_shopify_secret_is_answered_as_a_wrong_signature(
    intake: Intake, signature: str
):
    """Else the answer would tell anyone which shops exist."""
    raw = json.dumps(ORDER).encode()
    headers = intake.signed(raw, "a secret no shop has") | {DOMAIN_FIELD: DOMAIN}
    if signature == "missing":
        del headers["X-Shopify-Hmac-Sha256"]
    answers = [await intake.http.post(webhook(intake, shop), content=raw, headers=headers)
               for shop in (intake.shop_id, intake.other_shop, "no-such-shop")]
    assert_refusal(answers[0], 401, "X-Shopify-Hmac-Sha256")
    assert len({(a.status_code, a.text, tuple(a.headers.items())) for a in answers}) == 1


@pytest.mark.parametrize("domain", [None, "", "other.myshopify.com", DOMAIN + ".evil.example"])
async def test_a_signed_webhook_naming_another_or_no_shop_is_403(
    intake: Intake, domain: str | None
):
    """One app's secret signs every shop the app is installed on: the signature alone does
    not make the order this shop's."""
    raw = json.dumps(order(id=7)).encode()
    headers = intake.signed(raw) | {DOMAIN_FIELD: domain or ""}
    if domain is None:
        del headers[DOMAIN_FIELD]
    before = await intake.written()
    response = await intake.http.post(webhook(intake), content=raw, headers=headers)
    assert_refusal(response, 403, DOMAIN_FIELD)
    assert await intake.written() == before


async def test_the_domain_is_matched_whatever_its_case(intake: Intake):
    response = await deliver(intake, order(id=8), **{DOMAIN_FIELD: DOMAIN.upper()})
    assert response.status_code == 202, response.text


async def test_the_signature_is_checked_before_the_domain(intake: Intake):
    """Only the holder of the secret learns whether a domain is this shop's."""
    raw = json.dumps(ORDER).encode()
    headers = intake.signed(raw, "not-the-secret") | {DOMAIN_FIELD: "other.myshopify.com"}
    response = await intake.http.post(webhook(intake), content=raw, headers=headers)
    assert_refusal(response, 401, "X-Shopify-Hmac-Sha256")


async def test_another_topic_on_this_address_is_422(intake: Intake):
    response = await deliver(intake, ORDER, **{"X-Shopify-Topic": "orders/updated"})
    assert_refusal(response, 422, "X-Shopify-Topic")


@pytest.mark.parametrize(("change", "field"), [
    ({"total_price": "-3.00"}, "total_price"),
    ({"created_at": "2026-13-01T00:00:00Z"}, "created_at"),
    ({"currency": "EURO"}, "currency"),
    ({"line_items": []}, "line_items"),
    ({"line_items": "none"}, "line_items"),
    ({"id": None}, "id"),
])
async def test_a_bad_order_is_422_naming_shopifys_field(
    intake: Intake, change: dict[str, Any], field: str
):
    before = await intake.written()
    assert_refusal(await deliver(intake, order(**change)), 422, field)
    assert await intake.written() == before


async def test_a_bad_line_item_is_named_by_its_index_and_shopifys_field(intake: Intake):
    body = order()
    body["line_items"][1]["price"] = 22.0
    body["line_items"][0]["quantity"] = 0
    response = await deliver(intake, body)
    assert_refusal(response, 422, "line_items.1.price")
    assert_refusal(response, 422, "line_items.0.quantity")


async def test_a_signed_body_that_is_not_json_is_400(intake: Intake):
    assert_refusal(await deliver(intake, b"{not json"), 400, "body")
    assert_refusal(await deliver(intake, b"[]"), 422, "body")
