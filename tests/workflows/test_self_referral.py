"""A creator is not paid for buying with their own code: the same mailbox, however the address is
spelled (issue 17, bug 2). Customers' own codes are covered in test_lifecycle.py."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from database.models import Creator, Purchase
from intake.timeline import inspect_lifecycle
from tests.lifecycle_kit import LifecycleKit


def creator_with_mailbox(kit: LifecycleKit, email: str) -> str:
    code = f"SELF{uuid.uuid4().hex[:4].upper()}"
    with kit.sessions.begin() as session:
        session.add(Creator(code=code, name="Ana", email=email))
    return code


async def test_a_creator_buying_with_their_own_code_earns_nothing(kit: LifecycleKit):
    code = creator_with_mailbox(kit, "A.N.A+promo@GMail.com")
    own = await kit.buy(await kit.placed_now("s-1", "c-ana", email="ana@gmail.com",
                                             referral=code))
    friend = await kit.buy(await kit.placed_now("s-2", "c-bea", email="bea@example.com",
                                                referral=code))
    summary = await own.result()
    await friend.result()

    with kit.sessions() as session:
        refused = session.scalar(select(Purchase).where(Purchase.workflow_id == own.id))
        assert (refused.attribution, refused.referrer_code) == ("self_referral", code)
    assert summary.attribution == "self_referral"
    assert [(c.customer_id, c.milestone) for c in kit.credits(code)] == [("c-bea", "referral")]
    shown = await inspect_lifecycle(kit.sessions, kit.service.client, kit.shop_id, "s-1")
    assert shown is not None
    assert shown["attribution"] == "self_referral"
