"""Who referred a purchase, and when a referral is the customer referring themselves."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cli.creators import add_creator
from ledger.referrals import CUSTOMER_CODE_PREFIX, new_referral_code, normalize_email


@pytest.mark.parametrize(
    ("address", "mailbox"),
    [
        ("Ana.Silva+promo@GMAIL.com", "anasilva@gmail.com"),
        ("ana.silva@googlemail.com", "anasilva@gmail.com"),
        ("ana.silva+x@outlook.com", "ana.silva@outlook.com"),  # Outlook keeps dots
        ("ana.silva+x@example.com", "ana.silva+x@example.com"),  # unknown provider: as given
        ("  Ana@Example.COM ", "ana@example.com"),
    ],
)
def test_normalize_email_finds_the_real_mailbox(address: str, mailbox: str) -> None:
    assert normalize_email(address) == mailbox


def test_referral_codes_are_unambiguous() -> None:
    codes = {new_referral_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(c.startswith("R-") and len(c) == 10 and not set(c[2:]) & set("01IO") for c in codes)


@pytest.mark.parametrize("code", ["R-ABCD2345", "r-abcd2345", "R-X"])
def test_no_creator_code_in_the_customers_own_code_space(
    sessions: sessionmaker[Session], code: str
) -> None:
    """A creator's code is looked up before customers' codes, so one in their space would
    take over the referrals and credits of the customer holding it."""
    with pytest.raises(ValueError, match="customers' own"):
        add_creator(sessions, code, "Mallory", "mallory@example.com")
    assert new_referral_code().startswith(CUSTOMER_CODE_PREFIX)
