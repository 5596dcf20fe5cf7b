"""The shop events (docs/intake.md), validated strictly: a bad event is refused whole, naming the
field that is wrong, before anything is written."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from shop_events.currencies import CURRENCIES
from shop_events.money import in_minor_units, parse_money

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
EARLIEST_YEAR, LATEST_YEAR = 1900, 9000  # room for the test server's clock, none for overflow
LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


# C0 and C1 controls, DEL, and the bidirectional overrides and isolates that reorder what a
# support agent's terminal shows. Newlines and tabs only where a field holds prose.
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
PROSE_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _money(value: Any) -> Decimal:
    """Money is a plain decimal string; floats are refused, they are not exact."""
    return parse_money(value)


def _no_controls(value: str, pattern: re.Pattern[str] = CONTROLS) -> str:
    if found := pattern.search(value):
        raise ValueError(f"must not contain control characters (found U+{ord(found[0]):04X})")
    return value


def _prose(value: str) -> str:
    return _no_controls(value, PROSE_CONTROLS)


@cache
def _time_zones() -> frozenset[str]:
    """IANA's zone names as the tzdata package lists them: `localtime` (the server's own
    zone, different on every machine) and `Factory` are not places a customer lives."""
    names = resources.files("tzdata").joinpath("zones").read_text().split()
    return frozenset(names) - {"Factory"}


def _identifier(value: str) -> str:
    if not ID.match(value):
        raise ValueError(
            "must be 1-128 letters, digits or . _ : @ - and start with a letter or digit"
        )
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a time zone, e.g. 2026-11-20T10:00:00Z")
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"must be between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


Money = Annotated[Decimal, BeforeValidator(_money)]
Identifier = Annotated[str, AfterValidator(_identifier)]
# A shop id is configuration, stored in 64 characters (a longer one was a driver error).
ShopId = Annotated[str, Field(max_length=64), AfterValidator(_identifier)]
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Text = Annotated[str, AfterValidator(_no_controls)]
Prose = Annotated[str, AfterValidator(_prose)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Customer(Strict):
    id: Identifier
    email: EmailStr
    first_name: Text | None = Field(None, max_length=200)
    locale: str = "en"
    timezone: str = "UTC"
    marketing_consent: bool = False

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        if not LOCALE.match(value):
            raise ValueError("must be a language tag such as en, pt or pt-BR")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            if value not in _time_zones():
                raise ZoneInfoNotFoundError(value)
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value[:64]!r} is not an IANA time zone such as Europe/Lisbon"
            ) from None
        return value


class Item(Strict):
    sku: Identifier
    name: Text = Field(min_length=1, max_length=300)
    quantity: int = Field(ge=1, le=100_000, strict=True)
    unit_price: Money


class Referral(Strict):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class PurchaseEvent(Strict):
    """Fields are validated in this order, so each amount is checked against the currency
    and the total against the items, shipping and tax before it."""

    shop_id: ShopId
    order_id: Identifier
    placed_at: AwareDatetime
    customer: Customer
    currency: str
    items: list[Item] = Field(min_length=1, max_length=500)
    shipping: Money = Decimal(0)
    tax: Money = Decimal(0)
    total: Money
    referral: Referral | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError(f"{value[:16]!r} is not an ISO 4217 currency code such as EUR")
        return value

    @field_validator("items")
    @classmethod
    def _item_prices(cls, items: list[Item], info: ValidationInfo) -> list[Item]:
        """Kept at the currency's minor unit: one amount, one way to write it."""
        currency = info.data.get("currency")
        if currency is None:
            return items
        normalized = []
        for index, item in enumerate(items):
            try:
                price = in_minor_units(item.unit_price, currency)
            except ValueError as error:
                raise ValueError(f"{index}.unit_price {error}") from None
            normalized.append(item.model_copy(update={"unit_price": price}))
        return normalized

    @field_validator("shipping", "tax", "total")
    @classmethod
    def _in_minor_units(cls, amount: Decimal, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency")
        return amount if currency is None else in_minor_units(amount, currency)

    @field_validator("total")
    @classmethod
    def _explained(cls, total: Decimal, info: ValidationInfo) -> Decimal:
        """A total the items, shipping and tax cannot explain (a total sent in cents) is
        refused, rather than crediting a creator a hundred times over."""
        items, shipping, tax = (info.data.get(name) for name in ("items", "shipping", "tax"))
        if items is None or shipping is None or tax is None:
            return total
        goods = sum((item.unit_price * item.quantity for item in items), Decimal(0))
        if total > goods + shipping + tax:
            raise ValueError(
                f"{total} is more than the items ({goods}) plus shipping ({shipping}) and tax "
                f"({tax}): send the order's shipping and tax too"
            )
        return total


class RefundEvent(Strict):
    shop_id: ShopId
    order_id: Identifier
    amount: Money
    reason: Prose = Field("", max_length=500)
    refund_id: Identifier | None = None

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("must be more than zero")
        return value


class UnsubscribeEvent(Strict):
    shop_id: ShopId
    customer_id: Identifier


def describe_errors(error: ValidationError) -> list[dict[str, str]]:
    """Each problem as {"field": "customer.email", "problem": "..."}, for people to read."""
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not a field of this event"
        problems.append({"field": field, "problem": message})
    return problems
