"""The variables every template can use. One builder serves sends, previews and checks,
so a preview shows exactly what a send would render."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import quote

from messages.links import link_token


def unsubscribe_url(public_url: str, secret: str, shop_id: str, customer_id: str) -> str:
    token = link_token(secret, shop_id, customer_id)
    return f"{public_url}/u/{quote(shop_id)}/{quote(customer_id)}?token={token}"


def referral_link(public_url: str, code: str, shop_id: str) -> str:
    """The tracked link (`GET /r/{code}` counts the click, then sends the friend to the shop
    with the code in `?ref=`), so a shared link that was clicked can be told from one never
    opened. It names the shop too, so a code that is gone (its customer erased) still leads
    the friend to the shop."""
    return f"{public_url}/r/{quote(code, safe='')}?shop={quote(shop_id, safe='')}"


def build_context(
    *,
    step: str,
    shop: dict[str, Any],
    customer: dict[str, Any],
    order: dict[str, Any],
    products: dict[str, dict[str, Any]],
    referral_code: str | None,
    creator: dict[str, Any] | None,
    unsubscribe: str,
    public_url: str,
) -> dict[str, Any]:
    """`shop`: id, name, address, url; `customer`: first_name, locale; `order`: id, total,
    currency, placed_at, items (sku, name, quantity, unit_price); `products`: sku → tips etc."""
    items = [
        {
            **item,
            "unit_price": str(Decimal(str(item["unit_price"]))),
            "tips": list(products.get(item["sku"], {}).get("tips", [])),
            "url": products.get(item["sku"], {}).get("url", shop["url"]),
            "next_step": products.get(item["sku"], {}).get("next_step"),
        }
        for item in order["items"]
    ]
    referral = None
    if referral_code:
        referral = {
            "code": referral_code,
            "link": referral_link(public_url, referral_code, str(shop["id"])),
        }
    return {
        "step": step,
        "shop": shop,
        "customer": {
            "first_name": customer.get("first_name") or "there",
            "locale": customer["locale"],
        },
        "order": {**order, "items": items, "total": str(order["total"])},
        "items": items,
        "product": items[0] if items else None,
        "referral": referral,
        "creator": creator,
        "unsubscribe_url": unsubscribe,
    }
