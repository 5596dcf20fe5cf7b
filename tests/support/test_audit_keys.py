"""Audit action keys are unambiguous (each part length-prefixed), and a command repeated after
the deploy still finds the entry it made under the old `:`-joined key."""

from __future__ import annotations

from sqlalchemy import select

from database.models import AuditEntry
from shop_events.schemas import RefundEvent, UnsubscribeEvent
from support.actions import SupportActions
from support.audit import MAX_KEY, action_key
from tests.lifecycle_kit import LifecycleKit
from tests.support.conftest import ANA


def test_parts_that_joined_alike_get_different_keys():
    left, right = action_key("unsubscribe", "acme:eu", "c-1"), action_key(
        "unsubscribe", "acme", "eu:c-1")
    assert left.legacy == right.legacy == "unsubscribe:acme:eu:c-1"  # the old collision
    assert left.value != right.value
    assert left.value == "unsubscribe|7:acme:eu|3:c-1"


def test_a_key_longer_than_its_column_is_hashed_and_still_distinct():
    long = [action_key("refund", "s" * 128, "r" * 127 + tail).value for tail in "ab"]
    assert long[0] != long[1]
    assert all(len(key) <= MAX_KEY and key.startswith("refund#") for key in long)


def _add_legacy(kit: LifecycleKit, **entry: str | None) -> int:
    with kit.sessions.begin() as session:
        row = AuditEntry(actor="bo", reason="before the deploy", detail={}, **entry)
        session.add(row)
        session.flush()
        return row.id


async def test_unsubscribes_of_pairs_that_collided_are_two_entries(
    kit: LifecycleKit, actions: SupportActions
):
    shop = kit.shop_id
    first = await actions.unsubscribe(
        UnsubscribeEvent(shop_id=f"{shop}:eu", customer_id="c-1"), ANA)
    second = await actions.unsubscribe(
        UnsubscribeEvent(shop_id=shop, customer_id="eu:c-1"), ANA)

    assert (first.repeated, second.repeated) == (False, False)
    assert first.audit_id != second.audit_id
    with kit.sessions() as session:
        entry = session.get_one(AuditEntry, second.audit_id)
        assert (entry.shop_id, entry.customer_id) == (shop, "eu:c-1")


async def test_a_command_repeated_after_the_deploy_finds_its_legacy_entry(
    kit: LifecycleKit, actions: SupportActions
):
    shop = kit.shop_id
    handle = await kit.buy(await kit.placed_now("7001", "c-1"))
    refund = RefundEvent.model_validate(
        {"shop_id": shop, "order_id": "7001", "amount": "49.00", "reason": "broken"})
    refunded = await kit.service.accept_refund(refund)  # the first command, before the deploy
    legacy_refund = _add_legacy(kit, action="refund", shop_id=shop, order_id="7001",
                                action_key=f"refund:{shop}:{refunded['refund_id']}")
    legacy_unsubscribe = _add_legacy(kit, action="unsubscribe", shop_id=shop, customer_id="c-1",
                                     action_key=f"unsubscribe:{shop}:c-1")
    # another pair's old entry under the same ambiguous key is not this command's
    _add_legacy(kit, action="unsubscribe", shop_id=f"{shop}:eu", customer_id="c-2",
                action_key=f"unsubscribe:{shop}:eu:c-2")

    again_refund = await actions.refund(refund, ANA)
    again_unsubscribe = await actions.unsubscribe(
        UnsubscribeEvent(shop_id=shop, customer_id="c-1"), ANA)
    other = await actions.unsubscribe(UnsubscribeEvent(shop_id=shop, customer_id="eu:c-2"), ANA)
    await handle.result()

    assert (again_refund.repeated, again_refund.audit_id) == (True, legacy_refund)
    assert (again_unsubscribe.repeated, again_unsubscribe.audit_id) == (True, legacy_unsubscribe)
    assert not other.repeated
    with kit.sessions() as session:
        keys = session.scalars(select(AuditEntry.action_key).where(
            AuditEntry.shop_id == shop).order_by(AuditEntry.id)).all()
    assert keys == [f"refund:{shop}:{refunded['refund_id']}", f"unsubscribe:{shop}:c-1",
                    action_key("unsubscribe", shop, "eu:c-2").value]
