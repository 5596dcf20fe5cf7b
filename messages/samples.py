"""Sample purchases, and the template context a purchase gets, for checks and previews.

The context comes from the same `build_context` a send uses, so what a marketer previews is
what the customer gets; only the database's parts are stood in for: the customer's own referral
code (a fixed sample code) and the creator's name (the code the purchase carried).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from intake.schemas import PurchaseEvent
from messages.context import build_context, unsubscribe_url
from messages.render import TemplateRenderer

SAMPLE_REFERRAL_CODE = "R-SAMPLE42"


@dataclass(frozen=True)
class LinkSigning:
    """How unsubscribe links are made: the public URL and the secret that signs them."""

    public_url: str
    secret: str


def _purchase(order: str, shop: str, customer: dict[str, Any], items: list[tuple[str, str]],
              referral: str | None = None) -> PurchaseEvent:
    total = sum(float(price) for _, price in items)
    return PurchaseEvent.model_validate({
        "shop_id": shop,
        "order_id": order,
        "placed_at": "2026-11-20T10:00:00Z",
        "customer": {"email": "sample@example.com", "marketing_consent": True, **customer},
        "items": [{"sku": sku, "name": _NAMES.get(sku, sku), "quantity": 1, "unit_price": price}
                  for sku, price in items],
        "total": f"{total:.2f}",
        "currency": "EUR",
        **({"referral": {"code": referral}} if referral else {}),
    })


_NAMES = {
    "KETTLE-1": "Pour-over kettle",
    "GRINDER-2": "Burr grinder",
    "MUG-9": "<Travel> mug & lid",
}

SAMPLES: dict[str, PurchaseEvent] = {
    "ana-en-kettle-creator": _purchase(
        "S-1001", "acme", {"id": "c-ana", "first_name": "Ana", "locale": "en"},
        [("KETTLE-1", "49.00")], referral="MAYA10"),
    "joao-pt-two-products": _purchase(
        "S-1002", "acme", {"id": "c-joao", "first_name": "João", "locale": "pt"},
        [("GRINDER-2", "89.00"), ("KETTLE-1", "49.00")]),
    "bia-pt-br-friend-referral": _purchase(
        "S-1003", "demo", {"id": "c-bia", "first_name": "Bia", "locale": "pt-BR"},
        [("GRINDER-2", "89.00")], referral="R-7K2M9QXA"),
    "nameless-de-unknown-product": _purchase(
        "S-1004", "other-shop", {"id": "c-anon", "locale": "de"}, [("MUG-9", "15.00")]),
    "sam-en-three-items-creator": _purchase(
        "S-1005", "demo", {"id": "c-sam", "first_name": "Sam <O'Neil>", "locale": "en"},
        [("MUG-9", "15.00"), ("KETTLE-1", "49.00"), ("GRINDER-2", "89.00")], referral="LEO5"),
}


def creator_for(purchase: PurchaseEvent) -> dict[str, str] | None:
    """A creator's code makes a creator; a customer's own `R-` code makes a friend referral."""
    code = purchase.referral.code if purchase.referral else None
    if not code or code.startswith("R-"):
        return None
    return {"name": code, "code": code}


def purchase_context(
    renderer: TemplateRenderer, step: str, purchase: PurchaseEvent, signing: LinkSigning,
    *, locale: str | None = None,
) -> dict[str, Any]:
    """What a send of `step` for this purchase would see (`locale` overrides the customer's)."""
    return build_context(
        step=step,
        shop=renderer.shop(purchase.shop_id),
        customer={"first_name": purchase.customer.first_name,
                  "locale": locale or purchase.customer.locale},
        order={
            "id": purchase.order_id, "total": str(purchase.total), "currency": purchase.currency,
            "placed_at": purchase.placed_at.isoformat(),
            "items": [item.model_dump(mode="json") for item in purchase.items],
        },
        products=renderer.products(),
        referral_code=SAMPLE_REFERRAL_CODE,
        creator=creator_for(purchase),
        unsubscribe=unsubscribe_url(signing.public_url, signing.secret, purchase.shop_id,
                                    purchase.customer.id),
    )


def skus_of(purchase: PurchaseEvent) -> list[str]:
    """In the order a send chooses a product override by (as `Purchase.skus`)."""
    return sorted({item.sku for item in purchase.items})


def with_sku_first(purchase: PurchaseEvent, sku: str) -> PurchaseEvent:
    """The purchase as a buyer of `sku` would make it, for checking that SKU's override."""
    items = [item.model_dump(mode="json") for item in purchase.items]
    ours = [item for item in items if item["sku"] == sku] or [
        {"sku": sku, "name": _NAMES.get(sku, sku), "quantity": 1, "unit_price": "10.00"}
    ]
    rest = [item for item in items if item["sku"] != sku]
    data = purchase.model_dump(mode="json")
    data["items"] = ours + rest
    return PurchaseEvent.model_validate(data)
