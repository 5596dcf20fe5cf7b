"""Money as shops write it: a plain decimal string, at most the currency's minor unit.

`Decimal()` reads far more than a shop means (`"1e9"`, `"-0"`, `"4_9.00"`, `"+49"`, `".5"`,
Arabic-Indic digits), so the text is matched first, and the amount is kept at the currency's
minor unit, so `"10"`, `"10.0"` and `"10.00"` are one amount, one refund key, one stored value.
"""

from __future__ import annotations

import re
from decimal import Decimal

PLAIN_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,11})(\.[0-9]{1,4})?", re.ASCII)
MAX_MONEY = Decimal("1000000000")
# ISO 4217 minor units that are not 2 (the currencies in circulation, shop_events/currencies.py).
MINOR_UNITS = {
    **dict.fromkeys(
        ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
         "VUV", "XAF", "XOF", "XPF"], 0),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}


def minor_unit(currency: str) -> int:
    """Decimal places of the currency's smallest unit: 2 for EUR, 0 for JPY, 3 for KWD."""
    return MINOR_UNITS.get(currency, 2)


def parse_money(value: object) -> Decimal:
    """The amount in a decimal string such as "49.00"; a ValueError says what is wrong."""
    if isinstance(value, Decimal):  # from Python callers; JSON brings text
        value = str(value)
    if isinstance(value, float):
        raise ValueError('must be a decimal string such as "49.00", not a float (not exact)')
    if not isinstance(value, str):
        raise ValueError('must be a decimal string such as "49.00"')
    if value.startswith("-"):
        raise ValueError("must not be negative")
    if not PLAIN_DECIMAL.fullmatch(value):
        raise ValueError(
            f'{value[:40]!r} is not a plain decimal amount such as "49.00" '
            "(digits, an optional point and up to 4 decimals; no sign, exponent or separators)"
        )
    amount = Decimal(value)
    if amount > MAX_MONEY:
        raise ValueError(f"must be at most {MAX_MONEY}")
    return amount


def in_minor_units(amount: Decimal, currency: str) -> Decimal:
    """The amount at the currency's minor unit; a ValueError when it has finer decimals."""
    places = minor_unit(currency)
    quantum = Decimal(1).scaleb(-places)
    normalized = amount.quantize(quantum)
    if normalized != amount:
        raise ValueError(f"has more decimals than {currency} has ({places})")
    return normalized
