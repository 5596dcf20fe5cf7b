"""A repeated order is held against the one stored: written for the mutants of
`intake/store.py` that the other intake tests let live (docs/testing.md, "Mutation testing")."""

from __future__ import annotations

from tests.intake.conftest import Intake, assert_refusal


async def test_a_repeated_order_in_another_currency_or_referral_is_a_conflict(intake: Intake):
    """A retry that changes the currency or the code the customer bought through would move
    money or a creator's credit; the stored order wins and the retry is told which field."""
    plain = intake.purchase("RC1")
    referred = intake.purchase("RC2", referral={"code": "MAYA"})
    for event in (plain, referred):
        assert (await intake.post("/v1/purchases", event)).status_code == 202
    before = await intake.written()
    for event, field, changed in (
        (plain, "currency", {"currency": "USD"}),
        (plain, "referral", {"referral": {"code": "MAYA"}}),
        (referred, "referral", {"referral": {"code": "LEO"}}),
        (referred, "referral", {"referral": None}),
    ):
        refused = await intake.post("/v1/purchases", event | changed)
        assert_refusal(refused, 409, field)
        assert [p["field"] for p in refused.json()["problems"]] == [field]
    assert await intake.written() == before
    for event in (plain, referred):
        assert (await intake.post("/v1/purchases", event)).status_code == 200
