"""Who referred a purchase: creator codes, customers' own referral codes, self-referral checks."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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
    return "R-" + "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))


def ensure_referral_code(session: Session, customer: Customer) -> str:
    """Give the customer their own code once; later purchases reuse it."""
    while customer.referral_code is None:
        code = new_referral_code()
        if session.scalar(select(Customer.id).where(Customer.referral_code == code)) is None:
            customer.referral_code = code
    return customer.referral_code


@dataclass(frozen=True)
class Attribution:
    """`creator`, `customer` (an advocate), `self_referral`, `unknown_code` or `none`."""

    kind: str
    referrer_code: str | None = None


def resolve(session: Session, customer: Customer, code: str | None) -> Attribution:
    if not code:
        return Attribution("none")
    wanted = code.strip().upper()
    creator = session.scalar(select(Creator).where(func.upper(Creator.code) == wanted))
    if creator is not None:
        return Attribution("creator", creator.code)
    advocate = session.scalar(
        select(Customer).where(
            Customer.shop_id == customer.shop_id, Customer.referral_code == wanted
        )
    )
    if advocate is None:
        return Attribution("unknown_code")
    same_mailbox = (
        advocate.email_normalized is not None
        and advocate.email_normalized == customer.email_normalized
    )
    if advocate.id == customer.id or same_mailbox:
        return Attribution("self_referral", advocate.referral_code)
    return Attribution("customer", advocate.referral_code)
