"""Shopify's `orders/create` webhook, read as a purchase.

What Shopify sends is mapped, not trusted: line items, `total_price`, `currency`, `created_at`,
the customer (id, email, first name) and `customer_locale`; a discount code that looks like a
referral code becomes the referral; consent is the customer's `email_marketing_consent` state
where the payload still has it (API versions before 2025-01), else `buyer_accepts_marketing`.
Problems are reported under Shopify's field names, so a shop can find them in its own payload.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from intake.errors import EventRejected
from shop_events.schemas import CONTROLS, LOCALE, PurchaseEvent, describe_errors

REFERRAL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NOT_IN_SKU = re.compile(r"[^A-Za-z0-9._:@-]+")
SHOPIFY_FIELDS = [  # our field prefix -> Shopify's
    ("order_id", "id"), ("placed_at", "created_at"), ("total", "total_price"),
    ("customer.locale", "customer_locale"),
    ("referral", "discount_codes"), ("items", "line_items"),
]
LINE_FIELDS = {"unit_price": "price", "name": "title"}


def purchase_from_order(shop_id: str, order: Any) -> PurchaseEvent | None:
    """The purchase in one Shopify order, or None for an order without a customer to follow
    (a walk-in point-of-sale sale): answered 2xx, so Shopify does not retry it."""
    if not isinstance(order, dict):
        raise EventRejected(422, "body", "must be a Shopify order object")
    customer = order.get("customer") or {}
    if not isinstance(customer, dict):
        raise EventRejected(422, "customer", "must be an object")
    email = customer.get("email") or order.get("email") or order.get("contact_email")
    if not email or customer.get("id") is None:
        return None
    event: dict[str, Any] = {
        "shop_id": shop_id,
        "order_id": _id(order.get("id")),
        "placed_at": order.get("created_at"),
        "customer": _customer(order, customer, email),
        "items": [_item(line) for line in _list(order.get("line_items"), "line_items")],
        "total": order.get("total_price"),
        "currency": order.get("currency"),
        **_charges(order),
    }
    code = _referral_code(order.get("discount_codes"))
    if code:
        event["referral"] = {"code": code}
    try:
        return PurchaseEvent.model_validate(event)
    except ValidationError as error:
        raise EventRejected.invalid([_shopify_field(p) for p in describe_errors(error)]) from None


def _charges(order: dict[str, Any]) -> dict[str, str]:
    """Tax, and shipping with whatever else Shopify's total holds beyond the discounted items
    and tax (duties, tips), so the total is explained by the order's own figures."""
    try:
        total, subtotal = Decimal(order["total_price"]), Decimal(order["subtotal_price"])
        tax = Decimal(order.get("total_tax") or 0)
    except (KeyError, TypeError, ArithmeticError, ValueError):
        return {}  # the total is validated as sent, and refused under its own name if wrong
    if not all(amount.is_finite() and amount >= 0 for amount in (total, subtotal, tax)):
        return {}
    return {"tax": str(tax), "shipping": str(max(total - subtotal - tax, Decimal(0)))}


def _text(value: Any, limit: int) -> Any:
    """Shopify's text as a person reads it: control characters a storefront let through are
    dropped rather than refused, since Shopify would only retry the same order."""
    return CONTROLS.sub("", value)[:limit] if isinstance(value, str) else value


def _customer(order: dict[str, Any], customer: dict[str, Any], email: Any) -> dict[str, Any]:
    consent = customer.get("email_marketing_consent")
    if isinstance(consent, dict) and consent.get("state"):
        marketing = consent["state"] == "subscribed"
    else:
        marketing = order.get("buyer_accepts_marketing") is True
    first_name = customer.get("first_name")
    data = {
        "id": _id(customer.get("id")),
        "email": email,
        "first_name": _text(first_name, 200) or None,
        "marketing_consent": marketing,
    }
    locale = order.get("customer_locale")
    if isinstance(locale, str) and LOCALE.match(locale):
        data["locale"] = locale
    return data


def _item(line: Any) -> Any:
    if not isinstance(line, dict):
        return line  # refused by validation, under its own index
    sku = line.get("sku")
    sku = NOT_IN_SKU.sub("-", sku).strip("-._:@")[:128] if isinstance(sku, str) else ""
    if not sku:
        for key, prefix in (("variant_id", "variant"), ("product_id", "product"), ("id", "line")):
            if isinstance(line.get(key), int | str) and line.get(key) != "":
                sku = f"{prefix}-{line[key]}"
                break
    name = line.get("name") or line.get("title") or sku
    return {"sku": sku, "name": _text(name, 300),
            "quantity": line.get("quantity"), "unit_price": line.get("price")}


def _referral_code(codes: Any) -> str | None:
    for entry in codes if isinstance(codes, list) else []:
        code = entry.get("code") if isinstance(entry, dict) else None
        if isinstance(code, str) and REFERRAL.match(code.strip()):
            return code.strip()
    return None


def _id(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise EventRejected(422, field, "must be a list of the order's line items")
    return value


def _shopify_field(problem: dict[str, str]) -> dict[str, str]:
    field = problem["field"]
    for ours, theirs in SHOPIFY_FIELDS:
        if field == ours or field.startswith(ours + "."):
            field = theirs + field[len(ours):]
            break
    parts = field.split(".")
    if parts[0] == "line_items" and len(parts) == 3:
        parts[2] = LINE_FIELDS.get(parts[2], parts[2])
    return {"field": ".".join(parts), "problem": problem["problem"]}
