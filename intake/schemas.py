"""The shop events of SPEC.md, validated strictly: a bad event is refused whole, naming the
field that is wrong, before anything is written."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
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
    field_validator,
)

from intake.currencies import CURRENCIES

MAX_MONEY = Decimal("1000000000")
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
EARLIEST_YEAR, LATEST_YEAR = 1900, 9000  # room for the test server's clock, none for overflow
LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


def _money(value: Any) -> Decimal:
    """Money is a decimal string (or an integer); floats are refused, they are not exact."""
    if isinstance(value, bool | float):
        raise ValueError("must be a decimal string such as \"49.00\", not a float")
    if not isinstance(value, (str, int, Decimal)):
        raise ValueError("must be a decimal string such as \"49.00\"")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal amount") from None
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a decimal amount")
    if amount < 0:
        raise ValueError("must not be negative")
    if amount > MAX_MONEY:
        raise ValueError(f"must be at most {MAX_MONEY}")
    if amount.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ValueError("has more than 4 decimal places")
    return amount


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
AwareDatetime = Annotated[datetime, AfterValidator(_aware)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class Customer(Strict):
    id: Identifier
    email: EmailStr
    first_name: str | None = Field(None, max_length=200)
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
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Lisbon") from None
        return value


class Item(Strict):
    sku: Identifier
    name: str = Field(min_length=1, max_length=300)
    quantity: int = Field(ge=1, le=100_000, strict=True)
    unit_price: Money


class Referral(Strict):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class PurchaseEvent(Strict):
    shop_id: Identifier
    order_id: Identifier
    placed_at: AwareDatetime
    customer: Customer
    items: list[Item] = Field(min_length=1, max_length=500)
    total: Money
    currency: str
    referral: Referral | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if value not in CURRENCIES:
            raise ValueError(f"{value!r} is not an ISO 4217 currency code such as EUR")
        return value


class RefundEvent(Strict):
    shop_id: Identifier
    order_id: Identifier
    amount: Money
    reason: str = Field("", max_length=500)
    refund_id: Identifier | None = None

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("must be more than zero")
        return value


class UnsubscribeEvent(Strict):
    shop_id: Identifier
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
