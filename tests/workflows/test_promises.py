"""Promises of the lifecycle that no other test would notice breaking (issue 16): one referral
code per customer under racing first purchases, the credit key across a customer's lifecycles,
the attribution window's boundary, a customer's own code, and an unsubscribe stopping the emails
of every open lifecycle. Real workers, both databases, the time-skipping server, the intake."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

import ledger.referrals
from database.models import Customer, OutboxMessage, Purchase
from shop_events.schemas import UnsubscribeEvent
from tests.lifecycle_kit import LifecycleKit
from workflows.contract import RepeatPurchase
from workflows.lifecycle import PurchaseLifecycle


def _purchase_row(kit: LifecycleKit, order_id: str) -> Purchase:
    with kit.sessions() as session:
        row = session.scalar(
            select(Purchase).where(Purchase.shop_id == kit.shop_id, Purchase.order_id == order_id)
        )
        assert row is not None
        return row


def _customer_codes(kit: LifecycleKit, customer_id: str) -> list[str | None]:
    with kit.sessions() as session:
        return list(session.scalars(
            select(Customer.referral_code).where(
                Customer.shop_id == kit.shop_id, Customer.customer_id == customer_id
            )
        ))


async def test_racing_first_purchases_give_the_customer_one_code(
    kit: LifecycleKit, monkeypatch: pytest.MonkeyPatch
):
    """Both lifecycles' first steps read "no code yet" before either gives one (a barrier holds
    each after its read); the customer must end with one code, the one both steps saw given."""
    give = ledger.referrals.give_referral_code
    barrier = threading.Barrier(2, timeout=5)
    seen: list[str] = []

    def racing_give(connection: Connection, customer_pk: int) -> None:
        # a database that ran the two steps one after the other would break the barrier
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        give(connection, customer_pk)
        seen.append(connection.execute(
            select(Customer.referral_code).where(Customer.id == customer_pk)
        ).scalar_one())

    monkeypatch.setattr(ledger.referrals, "give_referral_code", racing_give)
    first, second = await asyncio.gather(
        kit.buy(await kit.placed_now("r-1001", "c-race")),
        kit.buy(await kit.placed_now("r-1002", "c-race", skus=["GRINDER-2"])),
    )
    await first.result()
    await second.result()

    [code] = _customer_codes(kit, "c-race")
    assert code and code.startswith("R-")
    assert seen == [code, code], "a code was given over another one"
    # Whatever a lifecycle sends carries the one code (once-per-customer sending of the prompt
    # is tests/messages' promise, not this one's).
    with kit.sessions() as session:
        texts = list(session.scalars(
            select(OutboxMessage.text).where(OutboxMessage.to_email == "c-race@example.com")
        ))
    shown = {c for text in texts for c in re.findall(r"R-[A-Z2-9]{8}", text or "")}
    assert shown == {code}


async def test_two_lifecycles_of_one_customer_credit_the_creator_once_per_milestone(
    kit: LifecycleKit,
):
    """SPEC: a credit is keyed by referrer + customer + milestone (ledger/credits.py). Both
    lifecycles are attributed to the creator and both see the third purchase; neither
    lifecycle's memory spans the other, so the ledger's key is all that keeps each milestone
    credited once."""
    creator = kit.add_creator("MAYA")
    first = await kit.buy(await kit.placed_now("k-2001", "c-two", referral=creator))
    await kit.skip(10)
    second = await kit.buy(
        await kit.placed_now("k-2002", "c-two", total="30.00", skus=["FILTER-3"], referral=creator)
    )
    await kit.skip(10)
    # 49 + 30 + 80 = 159: crosses spend 100 and the silver tier (150) for both lifecycles.
    third = await kit.buy(
        await kit.placed_now("k-2003", "c-two", total="80.00", skus=["GRINDER-2"])
    )
    for handle in (first, second, third):
        await handle.result()

    ledger = kit.credits(creator)
    rules = kit.rules
    assert [(c.milestone, c.order_id, c.customer_id, c.amount) for c in ledger] == [
        ("referral", "k-2001", "c-two", Decimal(rules.reward("referral"))),
        ("first_repeat_purchase", "k-2002", "c-two",
         Decimal(rules.reward("first_repeat_purchase"))),
        ("spend:100", "k-2003", "c-two", Decimal(rules.reward("spend:100"))),
        ("tier:silver", "k-2003", "c-two", Decimal(rules.reward("tier:silver"))),
    ]
    assert {c.status for c in ledger} == {"approved"}
    assert _purchase_row(kit, "k-2002").attribution == "creator"


def _rules_file(tmp_path: Path, **rules: object) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    return path


async def test_a_repeat_just_inside_the_window_earns(kit: LifecycleKit):
    creator = kit.add_creator("MAYA")
    first = await kit.buy(await kit.placed_now("w-3001", "c-win", referral=creator))
    placed = _purchase_row(kit, "w-3001").placed_at
    await kit.env.sleep(timedelta(days=180) - timedelta(hours=1))
    repeat = await kit.buy(
        await kit.placed_now("w-3002", "c-win", total="20.00", skus=["FILTER-3"])
    )
    await first.result()
    await repeat.result()
    assert _purchase_row(kit, "w-3002").placed_at < placed + timedelta(days=180)
    assert [(c.milestone, c.order_id) for c in kit.credits(creator)] == [
        ("referral", "w-3001"), ("first_repeat_purchase", "w-3002"),
    ]


async def test_a_repeat_after_the_window_earns_nothing(kit: LifecycleKit):
    creator = kit.add_creator("MAYA")
    first = await kit.buy(await kit.placed_now("w-3101", "c-late", referral=creator))
    await kit.env.sleep(timedelta(days=180) + timedelta(hours=1))
    repeat = await kit.buy(
        await kit.placed_now("w-3102", "c-late", total="200.00", skus=["FILTER-3"])
    )
    await first.result()
    await repeat.result()
    assert [(c.milestone, c.order_id) for c in kit.credits(creator)] == [("referral", "w-3101")]


async def test_a_repeat_placed_after_the_window_earns_nothing_in_an_open_lifecycle(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path,
    tmp_path: Path,
):
    """A lifecycle held open past its window (a long hold): the intake does not tell it of a
    repeat placed after the window, and told anyway (a late or stray signal), the lifecycle
    judges the repeat by when it was placed and credits nothing."""
    rules = _rules_file(tmp_path, hold_days=200)
    async with LifecycleKit.running(env, sessions, templates_dir, rules_file=rules) as kit:
        creator = kit.add_creator("MAYA")
        first = await kit.buy(await kit.placed_now("w-3201", "c-open", referral=creator))
        await kit.env.sleep(timedelta(days=181))
        status = await first.query(PurchaseLifecycle.status)
        assert status.stage == "holding_credits"
        await kit.buy(await kit.placed_now("w-3203", "c-open", total="200.00", skus=["FILTER-3"]))
        history = await kit.client.get_workflow_handle(first.id).fetch_history()
        assert not [e for e in history.events
                    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
        late = await kit.now()
        await kit.client.get_workflow_handle(first.id).signal(
            PurchaseLifecycle.repeat_purchase, RepeatPurchase("w-3202", "200.00", "249.00", late)
        )
        await first.result()
        assert [c.milestone for c in kit.credits(creator)] == ["referral"]


async def test_a_customer_using_their_own_code_earns_nothing(kit: LifecycleKit):
    first = await kit.buy(await kit.placed_now("s-4001", "c-self"))
    await first.result()
    [code] = _customer_codes(kit, "c-self")
    assert code
    again = await kit.buy(
        await kit.placed_now("s-4002", "c-self", skus=["FILTER-3"], referral=code.lower())
    )
    await again.result()

    refused = _purchase_row(kit, "s-4002")
    assert (refused.attribution, refused.referrer_code) == ("self_referral", code)
    status = await again.query(PurchaseLifecycle.status)
    assert status.attribution == "self_referral"
    assert kit.credits() == []
    assert _customer_codes(kit, "c-self") == [code]


async def test_an_unsubscribe_stops_the_emails_of_every_open_lifecycle(kit: LifecycleKit):
    first = await kit.buy(await kit.placed_now("u-5001", "c-unsub"))
    second = await kit.buy(await kit.placed_now("u-5002", "c-unsub", skus=["GRINDER-2"]))
    await kit.skip(3)
    assert [len(kit.outbox(h.id)) for h in (first, second)] == [1, 1]
    result = await kit.service.accept_unsubscribe(
        UnsubscribeEvent(shop_id=kit.shop_id, customer_id="c-unsub")
    )
    assert result == {"lifecycles_signalled": 2}
    summaries = [await first.result(), await second.result()]

    for handle, summary in zip((first, second), summaries, strict=True):
        assert len(kit.outbox(handle.id)) == 1, handle.id
        assert [e.step for e in kit.emails(handle.id) if e.status == "sent"] == ["day_1"]
        assert summary.emails_sent == 1
        assert summary.emails_skipped == {"unsubscribed": 3}
    with kit.sessions() as session:
        sent = session.scalar(
            select(func.count()).select_from(OutboxMessage)
            .where(OutboxMessage.to_email == "c-unsub@example.com")
        )
    assert sent == 2
