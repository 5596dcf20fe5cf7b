"""Shopify's order as a purchase, without HTTP: its own figures explain its total, and text a
storefront let through is cleaned rather than refused (Shopify would only retry it)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from intake.errors import EventRejected
from intake.shopify import purchase_from_order

ORDER = json.loads((Path(__file__).parent / "shopify_orders_create.json").read_text())


def order(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(ORDER) | changes
    body["created_at"] = datetime.now(UTC).isoformat()
    return body


def test_shipping_tax_and_duties_explain_the_total():
    subtotal = Decimal(ORDER["subtotal_price"])
    event = purchase_from_order("acme", order(
        total_price=str(subtotal + Decimal("7.40")), total_tax="2.40",
    ))
    assert event is not None
    assert (event.tax, event.shipping) == (Decimal("2.40"), Decimal("5.00"))
    assert event.total == subtotal + Decimal("7.40")


def test_a_total_shopify_cannot_explain_is_refused_under_shopifys_name():
    with pytest.raises(EventRejected) as refused:
        purchase_from_order("acme", order(total_price="999999.00",
                                          subtotal_price="999999.00"))
    assert refused.value.status == 422
    assert refused.value.field == "total_price"


def test_control_characters_from_a_storefront_are_dropped():
    body = order()
    body["customer"] = body["customer"] | {"first_name": "An\x1b[31ma\x00"}
    body["line_items"][0]["name"] = "Kettle\u202e\x07"
    event = purchase_from_order("acme", body)
    assert event is not None
    assert event.customer.first_name == "An[31ma"
    assert event.items[0].name == "Kettle"
