"""Sample purchases, and the template context a purchase gets, for checks and previews.

The context comes from the same `build_context` a send uses, so what a marketer previews is
what the customer gets; only the database's parts are stood in for: the customer's own referral
code (a fixed sample code) and the creator's name (the code the purchase carried).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from messages.context import build_context, unsubscribe_url
from messages.render import TemplateRenderer
from shop_events.schemas import Customer, Item, PurchaseEvent, Referral

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

def _max_length(model: type[BaseModel], field: str) -> int:
    """The intake's own limit, so the worst case follows it when it changes."""
    metadata = model.model_fields[field].metadata
    return next(m.max_length for m in metadata if hasattr(m, "max_length"))


def _filled(pattern: str, length: int) -> str:
    """`length` characters of `pattern` repeated, not ending in a space the intake would strip."""
    text = (pattern * (length // len(pattern) + 1))[:length]
    return text[:-1] + "x" if text[-1].isspace() else text


def worst_case() -> PurchaseEvent:
    """The most a purchase the intake accepts can ask of a template: every text at its longest,
    in characters that grow when HTML-escaped (`&`, `<`, `>`, quotes) or are more than one code
    point (an accent combined with its letter), the most items with the longest SKUs, the
    largest quantities and a long locale that falls back to `pt`. No step may fail for it."""
    count = _max_length(PurchaseEvent, "items")
    sku_length, id_length = 128, 128
    known = ["KETTLE-1", "GRINDER-2"]
    skus = known + [f"{n:04d}-" + _filled("Aa9._:@-", sku_length - 5) for n in range(count - 2)]
    name = _filled("\"&<>' ", _max_length(Item, "name"))
    quantity, price = 100_000, Decimal("19.99")
    return PurchaseEvent.model_validate({
        "shop_id": _filled("shop-", 64),  # shop_events.schemas.ShopId
        "order_id": _filled("Order:9@x.", id_length),
        "placed_at": "2026-11-20T10:00:00Z",
        "customer": {"id": _filled("c-42_", id_length), "email": "sample@example.com",
                     "first_name": _filled("Ana\"'&<>e\u0301\u2615",
                                           _max_length(Customer, "first_name")),
                     "locale": "pt-Abcdefgh", "marketing_consent": True},
        "items": [{"sku": sku, "name": name, "quantity": quantity, "unit_price": str(price)}
                  for sku in skus],
        "total": str(quantity * price * count),
        "currency": "EUR",
        "referral": {"code": _filled("MAYA-10_", _max_length(Referral, "code"))},
    })


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
    "worst-case-longest-everything": worst_case(),
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
        public_url=signing.public_url,
    )


def skus_of(purchase: PurchaseEvent) -> list[str]:
    """In the order a send chooses a product override by (as `Purchase.skus`)."""
    return sorted({item.sku for item in purchase.items})


def with_sku_first(purchase: PurchaseEvent, sku: str) -> PurchaseEvent:
    """The purchase as a buyer of `sku` would make it, for checking that SKU's override (in
    place of the last item when the purchase already has as many as the intake allows)."""
    items = [item.model_dump(mode="json") for item in purchase.items]
    ours = [item for item in items if item["sku"] == sku] or [
        {"sku": sku, "name": _NAMES.get(sku, sku), "quantity": 1, "unit_price": "10.00"}
    ]
    rest = [item for item in items if item["sku"] != sku]
    data = purchase.model_dump(mode="json")
    data["items"] = (ours + rest)[:_max_length(PurchaseEvent, "items")]
    data["total"] = str(sum(Decimal(i["unit_price"]) * i["quantity"] for i in data["items"]))
    return PurchaseEvent.model_validate(data)
