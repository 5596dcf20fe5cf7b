"""Erasing a customer mid-lifecycle: personal data gone, emails stop, the lifecycle runs on,
and the ledger keeps its amounts under the anonymous id (its later credits too)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from database.models import AuditEntry, Customer, EmailSend, OutboxMessage
from intake.timeline import inspect_lifecycle
from support.erase import erase_customer
from support.errors import ActionRefused
from support.find import Criteria, find_lifecycles
from tests.lifecycle_kit import LifecycleKit
from tests.support.conftest import ANA


async def test_erase_midway_blanks_personal_data_and_keeps_the_ledger(kit: LifecycleKit):
    creator = kit.add_creator("MAYA")
    first = await kit.buy(await kit.placed_now("8001", "c-5", referral=creator,
                                                email="erase.me@example.com"))
    await kit.skip(2)
    [before] = kit.outbox(first.id)
    assert before.to_email == "erase.me@example.com"

    erased = erase_customer(kit.sessions, kit.shop_id, "c-5", ANA)
    # The customer buys again: to us a new person, never linked back to the erased record.
    second = await kit.buy(await kit.placed_now("8002", "c-5", total="120.00",
                                                 email="back.again@example.com"))
    summary = await first.result()
    await second.result()

    assert erased.anonymous_id.startswith("anon-") and erased.outbox_messages == 1
    assert summary.emails_sent == 1
    assert summary.emails_skipped == {"customer_erased": 3}
    with kit.sessions() as session:
        customer = session.scalar(
            select(Customer).where(Customer.customer_id == erased.anonymous_id)
        )
        assert customer.email is customer.email_normalized is customer.first_name is None
        assert customer.erased_at is not None and customer.shop_id == kit.shop_id
        outbox = session.scalars(
            select(OutboxMessage).join(EmailSend).where(EmailSend.workflow_id == first.id)
        ).all()
        assert [(m.to_email, m.html, m.text, m.subject) for m in outbox] == [(None, None, None, "")]
        assert session.scalars(select(EmailSend.customer_id).where(
            EmailSend.workflow_id == first.id)).all() == [erased.anonymous_id] * 4
        [entry] = session.scalars(select(AuditEntry).where(AuditEntry.shop_id == kit.shop_id)).all()
        assert (entry.action, entry.customer_id, entry.actor) == (
            "erase_customer", erased.anonymous_id, "ana.support",
        )
        returning = session.scalar(select(Customer).where(
            Customer.shop_id == kit.shop_id, Customer.customer_id == "c-5"))
        assert returning.email == "back.again@example.com" and returning.id != customer.id
    # The credit was approved after the erasure, by id; amount and status kept, person gone.
    [credit] = kit.credits(creator)
    assert (credit.customer_id, credit.milestone, credit.amount, credit.status) == (
        erased.anonymous_id, "referral", Decimal("5.00"), "approved",
    )
    record = await inspect_lifecycle(kit.sessions, kit.client, kit.shop_id, "8001")
    assert record["erased_at"] and record["customer_id"] == erased.anonymous_id
    assert [a["action"] for a in record["audit"]] == ["erase_customer"]
    found = await find_lifecycles(kit.sessions, kit.client,
                                  Criteria(email="erase.me@example.com", shop_id=kit.shop_id))
    assert found == []


async def test_erase_an_unknown_customer_is_refused(kit: LifecycleKit):
    with pytest.raises(ActionRefused) as refused:
        erase_customer(kit.sessions, kit.shop_id, "c-nobody", ANA)
    assert refused.value.field == "customer"
