"""After `erase-customer`, no column of any table holds the customer's id, address or name.

The customer lives through real lifecycles and support actions first (emails sent and resent,
a send failing, unsubscribe, refund, a credit), plus what older code left: a send error quoting
their name, an entry under a `:`-joined key; then every column of every table,
found by reflecting the schema so a new table is covered without touching this test, is read
and searched in any case."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from sqlalchemy import MetaData, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from database.models import AuditEntry, EmailSend
from ledger.referrals import normalize_email
from shop_events.schemas import PurchaseEvent, RefundEvent, UnsubscribeEvent
from support.actions import SupportActions
from support.audit import Actor
from support.erase import erase_customer
from tests.lifecycle_kit import LifecycleKit


def leftovers(sessions: sessionmaker[Session], needles: list[str]) -> list[tuple[str, str, str]]:
    """(table, column, value) for every value holding one of the needles, in any case."""
    engine = sessions.kw["bind"]
    metadata = MetaData()
    metadata.reflect(engine)
    lowered = [needle.lower() for needle in needles]
    found = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for column, value in row._mapping.items():
                    text = (json.dumps(value, ensure_ascii=False, default=str)
                            if isinstance(value, dict | list) else str(value))
                    if any(needle in text.lower() for needle in lowered):
                        found.append((table.name, str(column), text))
    return found


def letters(size: int) -> str:
    return uuid.uuid4().hex[:size].translate(str.maketrans("0123456789", "ghijklmnop"))


async def test_no_column_of_any_table_holds_an_erased_customer(
    env: WorkflowEnvironment, sessions: sessionmaker[Session], templates_dir: Path,
    tmp_path: Path,
):
    broken = tmp_path / "templates"
    shutil.copytree(templates_dir, broken)
    for path in broken.glob("day_7/**/subject.txt"):
        path.write_text("{{ no_such_variable }}")
    customer_id = f"erz:{letters(8)}"  # ':' as a shop may send it
    email = f"Zeph.{letters(8)}+VIP@Example.COM"
    name = f"Zeph{letters(8)}"
    support = Actor("ana.support", f"{name} asked on chat ({email})")

    async with LifecycleKit.running(env, sessions, broken) as kit:
        actions = SupportActions(kit.service, [rule.step for rule in kit.rules.steps])
        creator = kit.add_creator("ERZ")
        raw = kit.purchase("erz-1", customer_id, email=email, referral=creator,
                           placed_at=await kit.now()).model_dump(mode="json")
        raw["customer"]["first_name"] = name
        raw["items"][0]["name"] = f"Mug engraved for {name}"
        handle = await kit.buy(PurchaseEvent.model_validate(raw))
        await kit.skip(2)  # day_1 sent
        await actions.resend(kit.shop_id, "erz-1", "day_1", support)
        await kit.skip(6)  # day_7 fails on its template and is retried
        assert [e.status for e in kit.emails(handle.id) if e.step == "day_7"] == ["failing"]
        await actions.unsubscribe(UnsubscribeEvent(shop_id=kit.shop_id, customer_id=customer_id),
                                  support)
        await actions.refund(RefundEvent.model_validate({
            "shop_id": kit.shop_id, "order_id": "erz-1", "amount": "49.00",
            "reason": f"{name}'s mug arrived broken",
        }), support)
        with kit.sessions.begin() as session:  # as workers and support wrote them before
            session.execute(update(EmailSend).where(
                EmailSend.workflow_id == handle.id, EmailSend.step == "day_7",
            ).values(last_error=f"template: day_7/subject.txt:1: UndefinedError: "
                                f"'dict object' has no attribute '{name}'"))
            session.add(AuditEntry(
                actor="bo", action="resubscribe", shop_id=kit.shop_id, customer_id=customer_id,
                reason="old entry", detail={"customer": customer_id},
                action_key=f"resubscribe:{kit.shop_id}:{customer_id}",
            ))
        assert kit.outbox(handle.id) and kit.credits(creator)
        assert leftovers(kit.sessions, [customer_id])  # the scan sees what is there

        erased = erase_customer(kit.sessions, kit.shop_id, customer_id,
                                Actor("ana.support", f"GDPR request #7 from {name}"))
        await handle.result()  # nothing the lifecycle writes afterwards brings them back

    needles = [customer_id, email, normalize_email(email), name]
    assert leftovers(kit.sessions, needles) == []
    [credit] = kit.credits(creator)
    assert credit.customer_id == erased.anonymous_id
    with kit.sessions() as session:
        entries = session.scalars(select(AuditEntry).where(
            AuditEntry.shop_id == kit.shop_id).order_by(AuditEntry.id)).all()
    assert [e.action for e in entries] == [
        "resend", "unsubscribe", "refund", "resubscribe", "erase_customer",
    ]
    assert entries[0].reason == "[erased] asked on chat ([erased])"
