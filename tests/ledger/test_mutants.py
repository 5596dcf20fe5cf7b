"""The credit ledger's promises, each checked where the ledger keeps it: written for the mutants
of `ledger/` that the lifecycle tests let live (docs/testing.md, "Mutation testing").

Every test uses a shop of its own, so the session's database can hold them all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from database.models import Creator, Credit, Customer
from database.session import engine_of
from ledger import credits
from ledger.credits import Referrer
from ledger.referrals import Attribution, Buyer, give_referral_code, normalize_email, resolve

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
HOLD = timedelta(days=30)
MAYA = Referrer("creator", "MAYA")


def _shop() -> str:
    return f"shop-{uuid.uuid4().hex[:8]}"


def _record(
    sessions: sessionmaker[Session],
    shop: str,
    amounts: dict[str, Decimal],
    *,
    customer: str = "c-1",
    order: str = "1001",
    referrer: Referrer = MAYA,
    now: datetime = NOW,
) -> list[int]:
    with engine_of(sessions).begin() as connection:
        rows = credits.record(
            connection, shop_id=shop, customer_id=customer, order_id=order,
            workflow_id=f"purchase-{shop}-{order}", referrer=referrer, amounts=amounts,
            currency="EUR", hold=HOLD, now=now,
        )
    return [row.id for row in rows]


def _ledger(sessions: sessionmaker[Session], shop: str) -> list[Credit]:
    with sessions() as session:
        query = select(Credit).where(Credit.shop_id == shop).order_by(Credit.id)
        return list(session.scalars(query))


def _approve(sessions: sessionmaker[Session], ids: list[int], now: datetime) -> int:
    with engine_of(sessions).begin() as connection:
        return credits.approve(connection, ids, now)


def _refund(
    sessions: sessionmaker[Session], shop: str, order: str = "1001"
) -> list[tuple[int, str, Decimal, str]]:
    with sessions.begin() as session:
        changed = credits.reverse_order(session, shop, order, NOW + HOLD + timedelta(days=1))
        return [(c.id, c.milestone, c.amount, c.status) for c in changed]


def test_a_credit_is_recorded_pending_with_its_hold_and_everything_finance_reports(
    sessions: sessionmaker[Session],
) -> None:
    shop = _shop()
    ids = _record(sessions, shop, {"referral": Decimal("5.00"), "spend_100": Decimal("10.00")})
    ledger = _ledger(sessions, shop)
    assert [c.id for c in ledger] == ids
    assert [
        (c.referrer_kind, c.referrer_code, c.customer_id, c.order_id, c.workflow_id, c.milestone,
         c.amount, c.currency, c.status, c.approve_after, c.approved_at)
        for c in ledger
    ] == [
        ("creator", "MAYA", "c-1", "1001", f"purchase-{shop}-1001", "referral",
         Decimal("5.00"), "EUR", "pending", NOW + HOLD, None),
        ("creator", "MAYA", "c-1", "1001", f"purchase-{shop}-1001", "spend_100",
         Decimal("10.00"), "EUR", "pending", NOW + HOLD, None),
    ]


def test_a_retried_record_finds_the_credits_already_earned_in_the_order_asked(
    sessions: sessionmaker[Session],
) -> None:
    shop = _shop()
    [referral] = _record(sessions, shop, {"referral": Decimal("5.00")})
    again = _record(
        sessions, shop, {"spend_100": Decimal("10.00"), "referral": Decimal("5.00")},
        order="1002",
    )
    assert again[1] == referral
    assert [(c.milestone, c.order_id) for c in _ledger(sessions, shop)] == [
        ("referral", "1001"), ("spend_100", "1002"),
    ]
    # another referrer, another customer, another shop: each earns the milestone of its own
    advocate = Referrer("customer", "R-2")
    other = _record(sessions, shop, {"referral": Decimal("5.00")}, referrer=advocate)
    other += _record(sessions, shop, {"referral": Decimal("5.00")}, customer="c-2")
    other += _record(sessions, _shop(), {"referral": Decimal("5.00")})
    assert len({referral, *other}) == 4


def test_approval_waits_for_the_hold_and_leaves_reversed_credits_reversed(
    sessions: sessionmaker[Session],
) -> None:
    shop = _shop()
    ids = _record(sessions, shop, {"referral": Decimal("5.00"), "spend_100": Decimal("10.00")})
    assert _approve(sessions, ids, NOW + HOLD - timedelta(seconds=1)) == 0
    assert [c.status for c in _ledger(sessions, shop)] == ["pending", "pending"]

    with sessions.begin() as session:
        session.get(Credit, ids[1]).status = "reversed"
    at = NOW + HOLD
    assert _approve(sessions, ids, at) == 1
    assert [(c.status, c.approved_at) for c in _ledger(sessions, shop)] == [
        ("approved", at), ("reversed", None),
    ]
    assert _approve(sessions, ids, at + timedelta(days=1)) == 0, "approved once, counted once"


def test_a_refund_reverses_pending_credits_in_place_and_claws_back_approved_and_paid_ones(
    sessions: sessionmaker[Session],
) -> None:
    shop = _shop()
    pending, approved, paid = _record(sessions, shop, {
        "referral": Decimal("5.00"), "spend_100": Decimal("10.00"), "spend_250": Decimal("20.00"),
    })
    _approve(sessions, [approved, paid], NOW + HOLD)
    with sessions.begin() as session:
        session.get(Credit, paid).status = "paid"
    other_order = _record(sessions, shop, {"tier_silver": Decimal("7.00")}, order="1002")

    refunded_at = NOW + HOLD + timedelta(days=1)
    changed = _refund(sessions, shop)
    ledger = {c.id: c for c in _ledger(sessions, shop)}
    clawbacks = [c for c in ledger.values() if c.reverses_credit_id is not None]
    assert [(i, m, a, s) for i, m, a, s in changed] == [
        (pending, "referral", Decimal("5.00"), "reversed"),
        (clawbacks[0].id, "clawback:spend_100", Decimal("-10.00"), "approved"),
        (clawbacks[1].id, "clawback:spend_250", Decimal("-20.00"), "approved"),
    ]
    assert (ledger[pending].status, ledger[pending].reversed_at) == ("reversed", refunded_at)
    assert (ledger[approved].status, ledger[paid].status) == ("approved", "paid")
    for clawback, credit in zip(clawbacks, (ledger[approved], ledger[paid]), strict=True):
        assert (
            clawback.referrer_kind, clawback.referrer_code, clawback.customer_id,
            clawback.order_id, clawback.workflow_id, clawback.currency, clawback.amount,
            clawback.status, clawback.reverses_credit_id, clawback.approve_after,
            clawback.approved_at,
        ) == (
            credit.referrer_kind, credit.referrer_code, credit.customer_id,
            credit.order_id, credit.workflow_id, credit.currency, -credit.amount,
            "approved", credit.id, refunded_at, refunded_at,
        )
    assert ledger[other_order[0]].status == "pending", "another order's credit is not refunded"
    assert sum(c.amount for c in ledger.values() if c.status != "reversed") == Decimal("7.00")


def test_two_refunds_of_an_approved_order_claw_back_once(sessions: sessionmaker[Session]) -> None:
    shop = _shop()
    ids = _record(sessions, shop, {"referral": Decimal("5.00")})
    _approve(sessions, ids, NOW + HOLD)
    first = _refund(sessions, shop)
    second = _refund(sessions, shop)
    assert second == first, "the second refund finds the first one's clawback"
    assert [(c.milestone, c.amount) for c in _ledger(sessions, shop)] == [
        ("referral", Decimal("5.00")), ("clawback:referral", Decimal("-5.00")),
    ]


def test_each_referrer_customer_and_shop_gets_a_clawback_of_its_own(
    sessions: sessionmaker[Session],
) -> None:
    """A clawback already on the ledger for the same milestone but another shop, referrer or
    customer is not this credit's: finding it would leave this refund's credit unclawed."""
    shop, other_shop = _shop(), _shop()
    for where, referrer, customer in [
        (other_shop, MAYA, "c-1"), (shop, Referrer("creator", "LEO"), "c-1"), (shop, MAYA, "c-2"),
        (shop, MAYA, "c-1"),
    ]:
        order = f"{referrer.code}-{customer}"
        _approve(sessions, _record(sessions, where, {"referral": Decimal("5.00")},
                                   referrer=referrer, customer=customer, order=order),
                 NOW + HOLD)
        _refund(sessions, where, order)
    ledger = _ledger(sessions, shop) + _ledger(sessions, other_shop)
    owed: dict[tuple[str, str, str], Decimal] = {}
    for c in ledger:
        key = (c.shop_id, c.referrer_code, c.customer_id)
        owed[key] = owed.get(key, Decimal(0)) + c.amount
    assert len(ledger) == 8
    assert owed == {key: Decimal("0.00") for key in owed} and len(owed) == 4


def test_a_refund_takes_back_only_its_own_shops_order(sessions: sessionmaker[Session]) -> None:
    """Order ids are the shop's: another shop's order 1001 keeps what it earned."""
    shop, other_shop = _shop(), _shop()
    for where in (shop, other_shop):
        _approve(sessions, _record(sessions, where, {"referral": Decimal("5.00")}), NOW + HOLD)
    [(_, milestone, amount, _)] = _refund(sessions, shop)
    assert (milestone, amount) == ("clawback:referral", Decimal("-5.00"))
    assert [(c.milestone, c.status) for c in _ledger(sessions, other_shop)] == [
        ("referral", "approved"),
    ]


@pytest.mark.parametrize(
    "domain", ["outlook.com", "hotmail.com", "live.com", "icloud.com", "me.com", "fastmail.com",
               "protonmail.com", "proton.me", "pm.me"],
)
def test_every_plus_tag_provider_reaches_one_mailbox_and_keeps_its_dots(domain: str) -> None:
    """A customer referring themselves through `ana+2@` of a provider that delivers plus tags
    to `ana@` is the same mailbox; only Gmail ignores dots too."""
    assert normalize_email(f"A.Na+promo@{domain.upper()}") == f"a.na@{domain}"


@pytest.mark.parametrize("domain", ["gmail.com", "googlemail.com"])
def test_gmail_ignores_dots_and_plus_tags(domain: str) -> None:
    assert normalize_email(f"a.n.a+x+y@{domain}") == "ana@gmail.com"


def test_who_referred_a_purchase(sessions: sessionmaker[Session]) -> None:
    """No code, a creator's code in any case, a customer's own code, the buyer's own code or
    mailbox, another shop's customer's code, and a code nobody holds."""
    shop, other_shop = _shop(), _shop()
    creator = f"CR{uuid.uuid4().hex[:6].upper()}"
    with sessions.begin() as session:
        session.add(Creator(code=creator, name="Maya", email=f"{creator.lower()}@creators.example"))
        people = [
            Customer(shop_id=where, customer_id=cid, email=email,
                     email_normalized=normalize_email(email))
            for where, cid, email in [
                (shop, "ana", "ana.silva@gmail.com"), (shop, "bea", "bea@example.com"),
                (other_shop, "cy", "cy@example.com"),
            ]
        ]
        session.add_all(people)
    with engine_of(sessions).begin() as connection:
        for person in people:
            give_referral_code(connection, person.id)
            give_referral_code(connection, person.id)  # a later purchase keeps the first
    with sessions() as session:
        ana, bea, cy = (session.get(Customer, p.id) for p in people)
    assert len({ana.referral_code, bea.referral_code, cy.referral_code}) == 3

    def buyer(customer: Customer, mailbox: str | None = None) -> Buyer:
        return Buyer(shop, customer.id, mailbox or customer.email_normalized)

    with engine_of(sessions).connect() as connection:
        def who(code: str | None, of: Buyer) -> Attribution:
            return resolve(connection, of, code)

        assert who(None, buyer(ana)) == who("", buyer(ana)) == Attribution("none")
        assert who(f" {creator.lower()} ", buyer(ana)) == Attribution("creator", creator)
        assert who(ana.referral_code.lower(), buyer(bea)) == Attribution(
            "customer", ana.referral_code)
        assert who(ana.referral_code, buyer(ana)) == Attribution(
            "self_referral", ana.referral_code)
        # another customer record that reaches Ana's mailbox (a dot and a plus tag apart)
        assert who(ana.referral_code, Buyer(shop, -1, "anasilva@gmail.com")) == Attribution(
            "self_referral", ana.referral_code)
        assert who(cy.referral_code, buyer(bea)) == Attribution("unknown_code")
        assert who("R-NOBODY22", buyer(bea)) == Attribution("unknown_code")
