"""The frequency cap (issue 18 §4): at most one marketing email per customer in any 16 hours of
lifecycle time, across all of the customer's lifecycles. An email over it is deferred to the next
send hour, shown as deferred while it waits, and never dropped."""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.schedule import next_send_hour, step_due_at
from cli.support import print_timeline
from database.models import EmailSend
from intake.timeline import inspect_lifecycle
from shop_events.schemas import RefundEvent
from tests.lifecycle_kit import LifecycleKit
from workflows.contract import LifecycleSummary
from workflows.lifecycle import PurchaseLifecycle
from workflows.rules import LifecycleRules

LISBON = ZoneInfo("Europe/Lisbon")
CAP = timedelta(hours=16)


def test_the_next_send_hour_is_the_customers_own_ten_oclock() -> None:
    # 09:30 UTC on 24 Oct is 10:30 in Lisbon (summer time, which ends on the 25th): past
    # Lisbon's ten, so the 25th at 10:00 local (UTC+0 by then); still before UTC's own ten.
    after = datetime(2026, 10, 24, 9, 30, tzinfo=UTC)
    at = next_send_hour(after, after, "Europe/Lisbon", 10, 86400)
    assert at.astimezone(LISBON).isoformat() == "2026-10-25T10:00:00+00:00"
    assert next_send_hour(after, after, "UTC", 10, 86400).isoformat() == (
        "2026-10-24T10:00:00+00:00"
    )
    assert next_send_hour(after, after, "Not/AZone", 10, 86400).isoformat() == (
        "2026-10-24T10:00:00+00:00"  # an unknown zone is UTC, as in the schedule
    )
    ten = datetime(2026, 10, 25, 10, 0, tzinfo=LISBON)
    assert next_send_hour(ten, after, "Europe/Lisbon", 10, 86400) == ten  # at it: that one
    assert next_send_hour(ten - timedelta(hours=3), after, "Europe/Lisbon", 10, 86400) == ten
    assert next_send_hour(ten, after, "Europe/Lisbon", 9, 86400) == (
        datetime(2026, 10, 26, 9, 0, tzinfo=LISBON)
    )


def test_the_next_send_hour_is_found_on_the_customers_own_date() -> None:
    """20:00 in Los Angeles is already the next day in UTC: the 23:00 send hour is that evening,
    not the next one; and an hour past it, the next day's, in the customer's zone."""
    la = ZoneInfo("America/Los_Angeles")
    evening = datetime(2026, 11, 21, 4, 0, tzinfo=UTC)  # 20 Nov 20:00 in LA
    at = next_send_hour(evening, evening, "America/Los_Angeles", 23, 86400)
    assert at == datetime(2026, 11, 20, 23, 0, tzinfo=la) and at.tzinfo is UTC
    tokyo = ZoneInfo("Asia/Tokyo")
    late = datetime(2026, 11, 20, 12, 0, tzinfo=tokyo)  # past Tokyo's ten
    at = next_send_hour(late, late, "Asia/Tokyo", 10, 86400)
    assert at == datetime(2026, 11, 21, 10, 0, tzinfo=tokyo) and at.tzinfo is tokyo


def test_on_a_compressed_day_the_next_send_hour_is_the_next_whole_day() -> None:
    placed = datetime(2026, 11, 20, 10, 0, 7, tzinfo=UTC)
    rules = LifecycleRules(day_seconds=60)
    assert rules.frequency_cap_seconds() == 40  # 16 of 24 hours
    at = next_send_hour(placed + timedelta(seconds=121), placed, "UTC", 10, 60)
    assert at - placed == timedelta(minutes=3)
    assert next_send_hour(placed + timedelta(minutes=2), placed, "UTC", 10, 60) == (
        step_due_at(placed, 2, "UTC", rules)
    )


def _customer_emails(kit: LifecycleKit, customer_id: str) -> list[EmailSend]:
    with kit.sessions() as session:
        return list(session.scalars(
            select(EmailSend)
            .where(EmailSend.shop_id == kit.shop_id, EmailSend.customer_id == customer_id)
            .order_by(EmailSend.sent_at)
        ))


@dataclass
class TwoPurchases:
    """Two lifecycles of one customer with day_1 due at the same 10:00: the one the cap holds."""

    waiting: WorkflowHandle[Any, LifecycleSummary]
    waiting_order: str
    handles: tuple[WorkflowHandle[Any, LifecycleSummary], ...]
    day_1: datetime


async def _two_purchases_at_day_1(kit: LifecycleKit, customer: str) -> TwoPurchases:
    """Buy twice an hour apart (other products, so both onboard) and stop 6 h after day_1."""
    placed = await kit.now()
    orders = (f"{customer}-1", f"{customer}-2")
    handles = (
        await kit.buy(kit.purchase(orders[0], customer, placed_at=placed)),
        await kit.buy(kit.purchase(orders[1], customer, skus=["FILTER-3"],
                                   placed_at=placed + timedelta(hours=1))),
    )
    day_1 = step_due_at(placed, 1, "Europe/Lisbon", kit.rules)
    await kit.env.sleep(day_1 + timedelta(hours=6) - await kit.now())
    [sent] = [e for h in handles for e in kit.emails(h.id)
              if e.step == "day_1" and e.status == "sent"]
    held = 1 if sent.workflow_id == handles[0].id else 0
    return TwoPurchases(handles[held], orders[held], handles, day_1)


async def test_a_second_purchase_waits_for_the_next_send_hour_and_nothing_is_dropped(
    kit: LifecycleKit, capsys: pytest.CaptureFixture[str],
) -> None:
    # One day_1 went out at 10:00; the other waits for the next day's 10:00, and says so.
    two = await _two_purchases_at_day_1(kit, "c-cap")
    waiting = two.waiting
    tomorrow = two.day_1 + timedelta(days=1)
    [row] = [e for e in kit.emails(waiting.id) if e.step == "day_1"]
    assert (row.status, row.skip_reason, row.deferred_until) == (
        "deferred", "frequency_cap", tomorrow
    )
    status = await waiting.query(PurchaseLifecycle.status)
    assert (status.waiting_on, status.waiting_for, status.waiting_until) == (
        "day_1", "frequency_cap", tomorrow
    )
    assert status.steps_done == {}
    # Support sees it the same way.
    record = await inspect_lifecycle(kit.sessions, kit.client, kit.shop_id, two.waiting_order)
    assert record is not None
    [email] = record["emails"]
    assert (email["status"], email["skip_reason"], email["deferred_until"]) == (
        "deferred", "frequency_cap", tomorrow.isoformat()
    )
    print_timeline(record)
    printed = capsys.readouterr().out
    assert (
        f"waiting on the send of day_1 (deferred by the frequency cap) until {tomorrow.isoformat()}"
    ) in printed
    assert f"frequency_cap until {tomorrow.isoformat()}" in printed

    summaries = [await handle.result() for handle in two.handles]

    emails = _customer_emails(kit, "c-cap")
    sent_at = [e.sent_at for e in emails if e.status == "sent"]
    assert all(b - a >= CAP for a, b in itertools.pairwise(sent_at)), sent_at
    assert {(at.astimezone(LISBON).hour, at.minute) for at in sent_at} == {(10, 0)}
    # Every step went out but the referral prompt, which this customer gets once.
    assert sorted((e.step, e.status, e.skip_reason) for e in emails) == sorted([
        ("day_1", "sent", None), ("day_1", "sent", None),
        ("day_7", "sent", None), ("day_7", "sent", None),
        ("day_21", "sent", None), ("day_21", "sent", None),
        ("referral_prompt", "sent", None),
        ("referral_prompt", "skipped", "already_sent_to_customer"),
    ])
    assert all(e.deferred_until is None for e in emails)
    assert sorted(s.emails_sent for s in summaries) == [3, 4]
    assert sum(len(kit.outbox(handle.id)) for handle in two.handles) == 7


async def test_a_stop_while_deferred_closes_the_email_unsent(kit: LifecycleKit) -> None:
    two = await _two_purchases_at_day_1(kit, "c-stop")
    waiting = two.waiting
    await kit.service.accept_refund(RefundEvent(
        shop_id=kit.shop_id, order_id=two.waiting_order, amount=Decimal("49.00"), reason="r"
    ))
    summary = await waiting.result()

    assert summary.stage == "refunded"
    assert [(e.step, e.status, e.skip_reason) for e in kit.emails(waiting.id)] == [
        ("day_1", "skipped", "lifecycle_refunded")
    ]
    assert kit.outbox(waiting.id) == []


async def test_the_cap_is_the_shops_to_set(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path,
    tmp_path: Path,
) -> None:
    """Off (0 hours), the referral prompt goes out with day_7, as the schedule says."""
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"frequency_cap_hours": 0}))
    async with LifecycleKit.running(env, sessions, templates_dir, rules_file=rules) as kit:
        placed = await kit.now()
        handle = await kit.buy(kit.purchase("fo-1", "c-off", placed_at=placed))
        await handle.result()
        day_7 = step_due_at(placed, 7, "Europe/Lisbon", kit.rules)
        # Sent when the timer fired: the send hour, give or take the moment a send takes.
        sent = {e.step: e.sent_at.replace(microsecond=0) for e in kit.emails(handle.id)}
        assert sent == {
            "day_1": step_due_at(placed, 1, "Europe/Lisbon", kit.rules),
            "day_7": day_7,
            "referral_prompt": day_7,
            "day_21": step_due_at(placed, 21, "Europe/Lisbon", kit.rules),
        }


async def test_a_transactional_step_is_neither_held_nor_counted(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path,
    tmp_path: Path,
) -> None:
    """A step the shop marks `marketing: false` (an order notice) goes out with a marketing
    email due at the same send hour."""
    templates = tmp_path / "templates"
    shutil.copytree(templates_dir, templates)
    shutil.copytree(templates / "day_1", templates / "order_notice")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"steps": [
        {"step": "order_notice", "day": 1, "marketing": False},
        {"step": "day_1", "day": 1},
        {"step": "day_7", "day": 1},
    ]}))
    async with LifecycleKit.running(env, sessions, templates, rules_file=rules) as kit:
        placed = await kit.now()
        handle = await kit.buy(kit.purchase("ft-1", "c-tx", placed_at=placed))
        await handle.result()
        day_1 = step_due_at(placed, 1, "Europe/Lisbon", kit.rules)
        emails = {e.step: e for e in kit.emails(handle.id)}
        assert {step: (e.status, e.marketing, e.sent_at.replace(microsecond=0))
                for step, e in emails.items()} == {
            "order_notice": ("sent", False, day_1),
            "day_1": ("sent", True, day_1),
            "day_7": ("sent", True, day_1 + timedelta(days=1)),  # the cap holds this one
        }
