"""Tracked referral links: whose code a `/r/{code}` names, where it sends the friend, and the
click it records.

A customer's referral code is unique across shops, so it names its shop; a creator's code is
not tied to one, so the link names the shop in `?shop=`. Codes are matched the way attribution
matches them (upper-cased), and the shop's storefront gets the stored spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from database.models import Creator, Customer, ReferralClick


@dataclass(frozen=True)
class Referrer:
    code: str
    kind: str  # "customer" or "creator"
    shop_id: str | None


def find_referrer(sessions: sessionmaker[Session], code: str) -> Referrer | None:
    wanted = code.strip().upper()
    with sessions() as session:
        creator = session.scalar(select(Creator.code).where(func.upper(Creator.code) == wanted))
        if creator is not None:  # looked up first, as attribution does
            return Referrer(creator, "creator", None)
        advocate = session.execute(select(Customer.referral_code, Customer.shop_id).where(
            Customer.referral_code == wanted)).first()
    if advocate is None or advocate.referral_code is None:
        return None
    return Referrer(advocate.referral_code, "customer", advocate.shop_id)


def record_click(sessions: sessionmaker[Session], referrer: Referrer, shop_id: str) -> None:
    """Code, shop and time only: nothing about who clicked."""
    with sessions.begin() as session:
        session.add(ReferralClick(code=referrer.code, shop_id=shop_id,
                                  referrer_kind=referrer.kind, clicked_at=datetime.now(UTC)))


def with_code(shop_url: str, param: str, code: str) -> str:
    """The shop's URL with `param=code` in its query, replacing one already there."""
    parts = urlsplit(shop_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != param]
    return urlunsplit(parts._replace(query=urlencode([*query, (param, code)])))
