"""The lifecycle end to end: real workflow, real activities, real database, time skipping."""

from __future__ import annotations

import shutil
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from database.models import Credit, Purchase
from shop_events.schemas import RefundEvent, UnsubscribeEvent
from tests.lifecycle_kit import LifecycleKit
from workflows.contract import LifecycleSummary
from workflows.lifecycle import PurchaseLifecycle

STEPS = ["day_1", "day_7", "referral_prompt", "day_21"]


def sent_steps(kit: LifecycleKit, workflow_id: str) -> list[str]:
    return [e.step for e in kit.emails(workflow_id) if e.status == "sent"]


async def test_happy_path_sends_every_step_at_ten_local_and_approves_the_referral(
    kit: LifecycleKit,
):
    creator = kit.add_creator("MAYA")
    placed = await kit.now()
    handle = await kit.buy(kit.purchase("1001", referral=creator.lower(), placed_at=placed))

    summary = await handle.result()

    assert summary == LifecycleSummary(4, {}, 0, {"approved": 1}, "completed", "creator")
    emails = kit.emails(handle.id)
    assert [e.step for e in emails] == STEPS
    lisbon = ZoneInfo("Europe/Lisbon")
    local_dates = []
    for email in emails:
        assert email.status == "sent" and email.provider_message_id.startswith("outbox-")
        assert email.template_hash and len(email.template_hash) == 64
        local = email.sent_at.astimezone(lisbon)
        assert (local.hour, local.minute) == (10, 0)
        local_dates.append((local.date() - placed.astimezone(lisbon).date()).days)
    # The referral prompt is due with day_7; the 16-hour frequency cap holds it back to the
    # next day's send hour.
    assert local_dates == [1, 7, 8, 21]
    outbox = kit.outbox(handle.id)
    assert len(outbox) == 4 and all(m.to_email == "c-42@example.com" for m in outbox)
    with kit.sessions() as session:
        code = session.scalar(
            select(Purchase).where(Purchase.workflow_id == handle.id)
        ).customer.referral_code
    assert code and code in outbox[2].text and code in outbox[2].html
    [credit] = kit.credits(creator)
    assert (credit.milestone, credit.amount, credit.status) == (
        "referral",
        Decimal("5.00"),
        "approved",
    )
    assert credit.approved_at >= credit.approve_after


async def test_repeat_purchase_crossing_two_thresholds_and_a_tier(kit: LifecycleKit):
    creator = kit.add_creator("MAYA")
    first = await kit.buy(await kit.placed_now("2001", referral=creator))
    await kit.skip(30)
    second = await kit.buy(await kit.placed_now("2002", total="250.00", skus=["GRINDER-2"]))

    await first.result()
    await second.result()

    milestones = {c.milestone: c for c in kit.credits(creator)}
    # 49 + 250 = 299: crosses spend 100 and 250, and the silver tier at 150.
    assert sorted(milestones) == [
        "first_repeat_purchase",
        "referral",
        "spend:100",
        "spend:250",
        "tier:silver",
    ]
    assert milestones["spend:100"].order_id == "2002"
    assert milestones["spend:250"].amount == Decimal("10.00")
    assert milestones["tier:silver"].amount == Decimal("15.00")
    assert {c.status for c in milestones.values()} == {"approved"}
    # The repeat buyer is onboarded for the new product, not again for the kettle.
    assert sent_steps(kit, second.id) == ["day_1", "day_7", "day_21"]
    skipped = {e.step: e.skip_reason for e in kit.emails(second.id) if e.status == "skipped"}
    assert skipped == {"referral_prompt": "already_sent_to_customer"}


async def test_same_product_again_is_not_onboarded_twice(kit: LifecycleKit):
    first = await kit.buy(await kit.placed_now("2101"))
    await kit.skip(25)
    second = await kit.buy(await kit.placed_now("2102"))
    await first.result()
    summary = await second.result()
    assert sent_steps(kit, first.id) == STEPS
    assert summary.emails_sent == 0
    assert summary.emails_skipped == {
        "already_onboarded_for_products": 3,
        "already_sent_to_customer": 1,
    }


async def test_refund_before_day_7_stops_the_prompt_and_reverses_the_credit(kit: LifecycleKit):
    creator = kit.add_creator("MAYA")
    handle = await kit.buy(await kit.placed_now("3001", referral=creator))
    await kit.skip(3)
    await kit.service.accept_refund(
        RefundEvent(shop_id=kit.shop_id, order_id="3001", amount=Decimal("49.00"), reason="broken")
    )
    summary = await handle.result()

    assert sent_steps(kit, handle.id) == ["day_1"]
    assert summary.stage == "refunded"
    assert [(c.milestone, c.status) for c in kit.credits(creator)] == [("referral", "reversed")]


async def test_refund_after_payout_is_a_clawback_entry(kit: LifecycleKit):
    creator = kit.add_creator("MAYA")
    handle = await kit.buy(await kit.placed_now("4001", referral=creator))
    await kit.skip(31)
    [credit] = kit.credits(creator)
    assert credit.status == "approved"
    with kit.sessions.begin() as session:
        session.get(Credit, credit.id).status = "paid"
    await kit.service.accept_refund(
        RefundEvent(
            shop_id=kit.shop_id, order_id="4001", amount=Decimal("49.00"), reason="late return"
        )
    )
    await handle.result()

    ledger = kit.credits(creator)
    assert [(c.milestone, c.amount, c.status) for c in ledger] == [
        ("referral", Decimal("5.00"), "paid"),
        ("clawback:referral", Decimal("-5.00"), "approved"),
    ]
    assert ledger[1].reverses_credit_id == ledger[0].id
    assert sum(c.amount for c in ledger) == 0


async def test_refund_after_the_lifecycle_closed_still_claws_back(kit: LifecycleKit):
    creator = kit.add_creator("MAYA")
    handle = await kit.buy(await kit.placed_now("4101", referral=creator))
    await handle.result()
    await kit.service.accept_refund(
        RefundEvent(shop_id=kit.shop_id, order_id="4101", amount=Decimal("10.00"), reason="partial")
    )
    assert [c.milestone for c in kit.credits(creator)] == ["referral", "clawback:referral"]


async def test_unsubscribe_midway_stops_marketing_email(kit: LifecycleKit):
    handle = await kit.buy(await kit.placed_now("5001"))
    await kit.skip(3)
    result = await kit.service.accept_unsubscribe(
        UnsubscribeEvent(shop_id=kit.shop_id, customer_id="c-42")
    )
    assert result == {"lifecycles_signalled": 1}
    summary = await handle.result()

    assert sent_steps(kit, handle.id) == ["day_1"]
    assert summary.emails_skipped == {"unsubscribed": 3}
    status = await handle.query(PurchaseLifecycle.status)
    assert status.unsubscribed is True


async def test_no_consent_means_no_marketing_email(kit: LifecycleKit):
    handle = await kit.buy(await kit.placed_now("5101", consent=False))
    summary = await handle.result()
    assert summary.emails_sent == 0 and summary.emails_skipped == {"no_marketing_consent": 4}


async def test_duplicate_purchase_event_starts_nothing_new(kit: LifecycleKit):
    event = await kit.placed_now("6001")
    first_id, created = await kit.service.accept_purchase(event)
    again_id, created_again = await kit.service.accept_purchase(event)
    assert (first_id, created, again_id, created_again) == (first_id, True, first_id, False)
    summary = await kit.handle(first_id).result()
    assert summary.emails_sent == 4 and len(kit.outbox(first_id)) == 4


async def test_duplicate_repeat_signal_credits_once(kit: LifecycleKit):
    creator = kit.add_creator("MAYA")
    first = await kit.buy(await kit.placed_now("7001", referral=creator))
    await kit.skip(2)
    repeat = await kit.placed_now("7002", total="80.00", skus=["FILTER-3"])
    await kit.buy(repeat)
    with kit.sessions.begin() as session:  # as if the routing crashed before remembering it
        session.scalar(
            select(Purchase).where(Purchase.order_id == "7002", Purchase.shop_id == kit.shop_id)
        ).repeat_routed_at = None
    await kit.service.accept_purchase(repeat)
    await first.result()

    assert sorted(c.milestone for c in kit.credits(creator)) == [
        "first_repeat_purchase",
        "referral",
        "spend:100",
    ]
    status = await first.query(PurchaseLifecycle.status)
    assert status.repeats == 1


async def test_self_referral_is_refused_and_recorded(kit: LifecycleKit):
    first = await kit.buy(await kit.placed_now("8001", "c-ana", email="Ana.Silva@gmail.com"))
    await first.result()
    with kit.sessions() as session:
        code = session.scalar(
            select(Purchase).where(Purchase.workflow_id == first.id)
        ).customer.referral_code
    # Same person under another customer id, with dots and a +tag Gmail ignores.
    second = await kit.buy(
        await kit.placed_now("8002", "c-ana-2", email="anasilva+promo@GMAIL.com", referral=code)
    )
    friend = await kit.buy(
        await kit.placed_now("8003", "c-bea", email="bea@example.com", referral=code)
    )
    await second.result()
    await friend.result()

    with kit.sessions() as session:
        refused = session.scalar(select(Purchase).where(Purchase.workflow_id == second.id))
        assert (refused.attribution, refused.referrer_code) == ("self_referral", code)
    assert [(c.customer_id, c.milestone, c.referrer_kind) for c in kit.credits(code)] == [
        ("c-bea", "referral", "customer")
    ]


async def test_lifecycle_status_query_reports_the_next_step(kit: LifecycleKit):
    event = await kit.placed_now("9001")
    handle = await kit.buy(event)
    await kit.skip(2)
    status = await handle.query(PurchaseLifecycle.status)
    assert status.stage == "onboarding"
    assert status.steps_done == {"day_1": "sent"}
    assert status.next_step == "day_7"
    # seven days after the purchase's local date, at 10:00 in the customer's zone
    lisbon = ZoneInfo("Europe/Lisbon")
    day_7 = event.placed_at.astimezone(lisbon).date() + timedelta(days=7)
    assert status.next_at == datetime.combine(day_7, time(10), lisbon)
    await kit.service.client.get_workflow_handle(handle.id).signal(PurchaseLifecycle.cancel)
    summary = await handle.result()
    assert summary.stage == "cancelled" and summary.emails_sent == 1


async def test_a_cancel_closes_a_send_stuck_on_retries_with_its_reason(
    env, sessions, templates_dir, tmp_path
):
    broken = tmp_path / "templates"
    shutil.copytree(templates_dir, broken)
    for path in broken.glob("day_1/**/subject.txt"):
        path.write_text("{{ no_such_variable }}")
    async with LifecycleKit.running(env, sessions, broken) as kit:
        handle = await kit.buy(await kit.placed_now("9101"))
        await kit.skip(2)  # day_1 fails and waits on its retries
        [stuck] = kit.emails(handle.id)
        assert (stuck.step, stuck.status) == ("day_1", "failing")
        await kit.client.get_workflow_handle(handle.id).signal(PurchaseLifecycle.cancel)
        summary = await handle.result()

    assert summary.stage == "cancelled"
    assert summary.emails_skipped == {"lifecycle_cancelled": 1}
    [closed] = kit.emails(handle.id)
    assert (closed.status, closed.skip_reason) == ("skipped", "lifecycle_cancelled")
    assert "no_such_variable" in closed.last_error
