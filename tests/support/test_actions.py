"""Refund, unsubscribe, cancel and resend from support: each acts through the lifecycle and
leaves exactly one audit entry saying who, when and why."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from database.models import AuditEntry, Refund
from intake.timeline import inspect_lifecycle
from shop_events.schemas import RefundEvent, UnsubscribeEvent
from support.actions import SupportActions
from support.audit import Actor
from support.errors import ActionRefused
from tests.lifecycle_kit import LifecycleKit
from tests.support.conftest import ANA
from workflows.contract import StepResult


def audit_entries(kit: LifecycleKit) -> list[AuditEntry]:
    with kit.sessions() as session:
        return list(session.scalars(
            select(AuditEntry).where(AuditEntry.shop_id == kit.shop_id).order_by(AuditEntry.id)
        ))


async def test_resend_sends_the_step_again_under_the_audit_entrys_key(
    kit: LifecycleKit, actions: SupportActions
):
    handle = await kit.buy(await kit.placed_now("6001"))
    await kit.skip(2)  # day_1 has gone out

    result = await actions.resend(kit.shop_id, "6001", "day_1", ANA)
    await handle.result()

    key = f"resend:{result.audit_id}"
    day_1 = [e for e in kit.emails(handle.id) if e.step == "day_1"]
    assert [(e.idempotency_key, e.status) for e in day_1] == [
        (f"{handle.id}:day_1", "sent"), (key, "sent"),
    ]
    assert len(kit.outbox(handle.id)) == 5
    [entry] = audit_entries(kit)
    assert (entry.action, entry.actor, entry.reason, entry.order_id) == (
        "resend", "ana.support", "customer asked on chat #812", "6001",
    )
    assert entry.detail == {"step": "day_1", "idempotency_key": key, "outcome": "signalled"}
    record = await inspect_lifecycle(kit.sessions, kit.client, kit.shop_id, "6001")
    assert [e["step"] for e in record["emails"] if e["resend"]] == ["day_1"]
    assert [a["action"] for a in record["audit"]] == ["resend"]


async def test_resend_on_a_closed_lifecycle_runs_its_own_one_step_workflow(
    kit: LifecycleKit, actions: SupportActions
):
    handle = await kit.buy(await kit.placed_now("6101"))
    await handle.result()

    result = await actions.resend(kit.shop_id, "6101", "day_7", ANA)
    sent = await kit.client.get_workflow_handle(
        f"resend-{result.audit_id}", result_type=StepResult
    ).result()

    key = f"resend:{result.audit_id}"
    assert (sent.step, sent.status) == ("day_7", "sent")
    day_7 = [(e.idempotency_key, e.status) for e in kit.emails(handle.id) if e.step == "day_7"]
    assert day_7 == [(f"{handle.id}:day_7", "sent"), (key, "sent")]
    assert len(kit.outbox(handle.id)) == 5
    [entry] = audit_entries(kit)
    assert entry.detail == {
        "step": "day_7", "idempotency_key": key, "outcome": f"started resend-{result.audit_id}",
    }


async def test_resend_is_refused_for_an_unknown_step_or_order(
    kit: LifecycleKit, actions: SupportActions
):
    handle = await kit.buy(await kit.placed_now("6111"))
    await handle.result()
    sent_before = len(kit.emails(handle.id))

    with pytest.raises(ActionRefused) as step:
        await actions.resend(kit.shop_id, "6111", "day_99", ANA)
    assert step.value.field == "step" and "day_1" in step.value.problem
    with pytest.raises(ActionRefused) as order:
        await actions.resend(kit.shop_id, "nope", "day_1", ANA)
    assert order.value.field == "order"

    assert len(kit.emails(handle.id)) == sent_before
    assert audit_entries(kit) == []


async def test_cancel_stops_the_remaining_emails_and_is_audited_once(
    kit: LifecycleKit, actions: SupportActions
):
    creator = kit.add_creator("MAYA")  # its credit's hold keeps the lifecycle open a while
    handle = await kit.buy(await kit.placed_now("6201", referral=creator))
    await kit.skip(2)

    first = await actions.cancel(kit.shop_id, "6201", ANA)
    again = await actions.cancel(kit.shop_id, "6201", Actor("bo", "double click"))
    summary = await handle.result()

    assert summary.stage == "cancelled"
    assert [e.step for e in kit.emails(handle.id) if e.status == "sent"] == ["day_1"]
    assert (first.repeated, again.repeated, again.audit_id) == (False, True, first.audit_id)
    [entry] = audit_entries(kit)
    assert (entry.action, entry.actor) == ("cancel", "ana.support")
    assert entry.detail == {"outcome": "signalled"}
    with pytest.raises(ActionRefused, match="closed"):
        await actions.cancel(kit.shop_id, "6201", ANA)


async def test_refund_and_unsubscribe_are_audited_once_and_shown_by_inspect(
    kit: LifecycleKit, actions: SupportActions
):
    creator = kit.add_creator("MAYA")
    handle = await kit.buy(await kit.placed_now("6301", referral=creator))
    refund = RefundEvent.model_validate({"shop_id": kit.shop_id, "order_id": "6301",
                                         "amount": "49.00", "reason": "arrived broken"})
    unsubscribe = UnsubscribeEvent(shop_id=kit.shop_id, customer_id="c-42")

    unsubscribed = await actions.unsubscribe(unsubscribe, ANA)
    await actions.unsubscribe(unsubscribe, ANA)
    first = await actions.refund(refund, ANA)  # the lifecycle may close at once after this
    repeated = await actions.refund(refund, ANA)
    await handle.result()

    assert (first.repeated, repeated.repeated) == (False, True)
    assert unsubscribed.detail == {"lifecycles_signalled": 1}
    with kit.sessions() as session:
        assert len(session.scalars(select(Refund).where(Refund.shop_id == kit.shop_id)).all()) == 1
    assert [(a.action, a.order_id, a.customer_id) for a in audit_entries(kit)] == [
        ("unsubscribe", None, "c-42"), ("refund", "6301", None),
    ]
    record = await inspect_lifecycle(kit.sessions, kit.client, kit.shop_id, "6301")
    assert [a["action"] for a in record["audit"]] == ["unsubscribe", "refund"]
    assert record["refunds"][0]["reason"] == "arrived broken"
    assert record["unsubscribes"][0]["by"] == "ana.support"
    assert [(c["milestone"], c["status"]) for c in record["credits"]] == [("referral", "reversed")]


@pytest.mark.parametrize(("actor", "field"), [
    (Actor("", "why"), "actor"), (Actor("ana", "  "), "reason"),
    (Actor("ana", "x" * 1001), "reason"),
])
async def test_every_action_needs_who_and_why(
    kit: LifecycleKit, actions: SupportActions, actor: Actor, field: str
):
    handle = await kit.buy(await kit.placed_now("6401"))
    with pytest.raises(ActionRefused) as refused:
        await actions.cancel(kit.shop_id, "6401", actor)
    assert refused.value.field == field
    assert audit_entries(kit) == []
    await handle.result()  # an open lifecycle left without workers would stall time skipping
