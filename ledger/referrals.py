"""Who referred a purchase: creator codes, customers' own referral codes, self-referral checks."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, select, update

from database.models import Creator, Customer

# Providers that deliver `a.b+tag@` to `ab@` (dots) or to `a.b@` (plus tags).
_IGNORE_DOTS = {"gmail.com", "googlemail.com"}
_IGNORE_PLUS = _IGNORE_DOTS | {
    "outlook.com",
    "hotmail.com",
    "live.com",
    "icloud.com",
    "me.com",
    "fastmail.com",
    "protonmail.com",
    "proton.me",
    "pm.me",
}
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CUSTOMER_CODE_PREFIX = "R-"  # customers' own codes; no creator's code may start so


def normalize_email(email: str) -> str:
    """The mailbox an address really reaches, so `Ana.B+x@Gmail.com` matches `anab@gmail.com`."""
    local, _, domain = email.strip().lower().rpartition("@")
    if domain == "googlemail.com":
        domain = "gmail.com"
    if domain in _IGNORE_PLUS:
        local = local.split("+", 1)[0]
    if domain in _IGNORE_DOTS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def new_referral_code() -> str:
    return CUSTOMER_CODE_PREFIX + "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))


CODE_TAKEN = select(Customer.id).where(Customer.referral_code == bindparam("code"))
# only a customer without one gets it: two first purchases starting at once agree on one code
GIVE_CODE = (
    update(Customer)
    .where(Customer.id == bindparam("customer_pk"), Customer.referral_code.is_(None))
    .values(referral_code=bindparam("code"))
)
CREATOR = select(Creator.code, Creator.email).where(func.upper(Creator.code) == bindparam("code"))
ADVOCATE = select(Customer.id, Customer.referral_code, Customer.email_normalized).where(
    Customer.shop_id == bindparam("shop_id"), Customer.referral_code == bindparam("code")
)


def give_referral_code(connection: Connection, customer_pk: int) -> None:
    """Give the customer their own code, once: later purchases keep it."""
    while True:
        code = new_referral_code()
        if connection.execute(CODE_TAKEN, {"code": code}).first() is None:
            connection.execute(GIVE_CODE, {"customer_pk": customer_pk, "code": code})
            return


@dataclass(frozen=True)
class Attribution:
    """`creator`, `customer` (an advocate), `self_referral`, `unknown_code` or `none`."""

    kind: str
    referrer_code: str | None = None


@dataclass(frozen=True)
class Buyer:
    """The customer a purchase belongs to, as attribution needs them."""

    shop_id: str
    customer_pk: int
    email_normalized: str | None


def resolve(connection: Connection, buyer: Buyer, code: str | None) -> Attribution:
    if not code:
        return Attribution("none")
    wanted = code.strip().upper()
    creator = connection.execute(CREATOR, {"code": wanted}).first()
    if creator is not None:
        # A creator buying with their own code earns nothing, whichever address variant they use.
        if buyer.email_normalized is not None and (
            normalize_email(creator.email) == buyer.email_normalized
        ):
            return Attribution("self_referral", creator.code)
        return Attribution("creator", creator.code)
    advocate = connection.execute(ADVOCATE, {"shop_id": buyer.shop_id, "code": wanted}).first()
    if advocate is None:
        return Attribution("unknown_code")
    same_mailbox = (
        advocate.email_normalized is not None
        and advocate.email_normalized == buyer.email_normalized
    )
    if advocate.id == buyer.customer_pk or same_mailbox:
        return Attribution("self_referral", advocate.referral_code)
    return Attribution("customer", advocate.referral_code)
