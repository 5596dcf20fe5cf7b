"""Finance: the ledger export, payout batches applied exactly once (and never half), and the
per-creator summary from a real lifecycle's credits."""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from database.models import Credit, PayoutBatch
from support import finance
from support.errors import ActionRefused
from tests.lifecycle_kit import LifecycleKit


def ledger(
    sessions: sessionmaker[Session], *entries: tuple[str, str, str]
) -> tuple[str, list[int]]:
    """Credits of a fresh creator: (milestone, amount, status) each, for customers c-0, c-1…"""
    code = f"FIN{uuid.uuid4().hex[:6].upper()}"
    now = datetime.now(UTC)
    with sessions.begin() as session:
        rows = [
            Credit(shop_id="acme", referrer_kind="creator", referrer_code=code,
                   customer_id=f"c-{i}", order_id=f"o-{i}", workflow_id=f"purchase-acme-o-{i}",
                   milestone=milestone, amount=Decimal(amount), currency="EUR", status=status,
                   approve_after=now)
            for i, (milestone, amount, status) in enumerate(entries)
        ]
        session.add_all(rows)
        session.flush()
        return code, [row.id for row in rows]


def statuses(sessions: sessionmaker[Session], ids: list[int]) -> list[tuple[str, str | None]]:
    query = select(Credit).where(Credit.id.in_(ids)).order_by(Credit.id)
    with sessions() as session:
        return [(c.status, c.payout_batch) for c in session.scalars(query)]


def batch_file(tmp_path: Path, batch_id: str, ids: list[int], kind: str = "json") -> Path:
    path = tmp_path / f"{batch_id}.{kind}"
    if kind == "json":
        path.write_text(json.dumps({"batch_id": batch_id, "credit_ids": ids}))
    else:
        path.write_text("credit_id,batch_id\n" + "".join(f"{i},{batch_id}\n" for i in ids))
    return path


def test_a_batch_pays_approved_credits_once(sessions: sessionmaker[Session], tmp_path: Path):
    _, ids = ledger(sessions, ("referral", "5.00", "approved"), ("spend:100", "10.00", "approved"),
                    ("clawback:referral", "-5.00", "approved"))
    batch_id = f"B-{uuid.uuid4().hex[:8]}"
    payout = finance.read_payout_file(batch_file(tmp_path, batch_id, ids, "csv"))

    first = finance.mark_paid(sessions, payout, "fin.ops")
    again = finance.mark_paid(sessions, payout, "fin.ops")

    assert (first.applied, first.credit_count, first.totals) == (True, 3, {"EUR": "10.00"})
    assert (again.applied, again.credit_count, again.totals) == (False, 3, {"EUR": "10.00"})
    assert statuses(sessions, ids) == [("paid", batch_id)] * 3
    with sessions() as session:
        [batch] = session.scalars(select(PayoutBatch).where(PayoutBatch.batch_id == batch_id)).all()
        assert (batch.credit_count, batch.actor) == (3, "fin.ops")


def test_a_batch_that_does_not_match_the_ledger_writes_nothing(
    sessions: sessionmaker[Session], tmp_path: Path
):
    _, (approved, pending, reversed_, paid_later) = ledger(
        sessions, ("referral", "5.00", "approved"), ("referral", "5.00", "pending"),
        ("referral", "5.00", "reversed"), ("tier:silver", "15.00", "approved"),
    )
    wrong = finance.PayoutFile(f"B-{uuid.uuid4().hex[:8]}", [approved, pending, reversed_, 10**9])
    with pytest.raises(ActionRefused) as refused:
        finance.mark_paid(sessions, wrong, "fin.ops")
    assert refused.value.field == "credit_ids"
    for problem in (f"{pending} is pending", f"{reversed_} is reversed", f"{10**9} does not exist"):
        assert problem in refused.value.problem
    assert statuses(sessions, [approved, pending]) == [("approved", None), ("pending", None)]
    with sessions() as session:
        batches = select(PayoutBatch).where(PayoutBatch.batch_id == wrong.batch_id)
        assert session.scalar(batches) is None

    paid = finance.PayoutFile(f"B-{uuid.uuid4().hex[:8]}", [approved])
    finance.mark_paid(sessions, paid, "fin.ops")
    with pytest.raises(ActionRefused, match=f"{approved} is already paid in batch {paid.batch_id}"):
        finance.mark_paid(sessions, finance.PayoutFile("B-other", [approved]), "fin.ops")
    with pytest.raises(ActionRefused, match="already paid with other credits") as reused:
        finance.mark_paid(sessions, finance.PayoutFile(paid.batch_id, [approved, paid_later]), "x")
    assert reused.value.field == "batch_id"
    assert statuses(sessions, [paid_later]) == [("approved", None)]


@pytest.mark.parametrize(("content", "field"), [
    ('{"credit_ids": [1]}', "batch_id"),
    ('{"batch_id": "B1", "credit_ids": []}', "credit_ids"),
    ('{"batch_id": "B1", "credit_ids": [1, "x"]}', "credit_ids"),
    ('{"batch_id": "B1", "credit_ids": [1, 1]}', "credit_ids"),
    ("{not json", "batch"),
    ("credit_id,batch_id\n1,B1\n2,B2\n", "batch_id"),
    ("credit,batch\n1,B1\n", "batch"),
])
def test_bad_batch_files_name_the_field(tmp_path: Path, content: str, field: str):
    path = tmp_path / "batch.txt"
    path.write_text(content)
    with pytest.raises(ActionRefused) as refused:
        finance.read_payout_file(path)
    assert refused.value.field == field


def test_credits_export_filters_by_creator_status_and_date(sessions: sessionmaker[Session]):
    code, ids = ledger(
        sessions, ("referral", "5.00", "approved"), ("spend:100", "10.00", "pending")
    )
    with sessions() as session:
        approved = finance.list_credits(session, finance.CreditFilter(creator=code.lower(),
                                                                      status="approved"))
        tomorrow = datetime.now(UTC) + timedelta(days=1)
        later = finance.list_credits(session, finance.CreditFilter(creator=code, since=tomorrow))
        everything = finance.list_credits(session, finance.CreditFilter(creator=code))
        with pytest.raises(ActionRefused, match="status"):
            finance.list_credits(session, finance.CreditFilter(status="owed"))
    assert [(r["id"], r["amount"], r["status"]) for r in approved] == [(ids[0], "5.00", "approved")]
    assert later == []
    parsed = list(csv.DictReader(io.StringIO(finance.as_csv(everything))))
    assert [(r["id"], r["milestone"], r["amount"]) for r in parsed] == [
        (str(ids[0]), "referral", "5.00"), (str(ids[1]), "spend:100", "10.00"),
    ]
    assert "2 credit(s); total 15.00 EUR" in finance.as_table(everything)


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01", "2026-11-01T10:00:00"])
def test_since_must_be_a_date_or_a_zoned_time(raw: str):
    with pytest.raises(ActionRefused) as refused:
        finance.parse_since(raw)
    assert refused.value.field == "since"


async def test_summary_of_a_creator_from_real_lifecycles(kit: LifecycleKit):
    creator = kit.add_creator("SUM")
    first = await kit.buy(await kit.placed_now("9001", "c-1", referral=creator))
    other = await kit.buy(await kit.placed_now("9002", "c-2", referral=creator))
    await kit.skip(10)
    repeat = await kit.buy(await kit.placed_now("9003", "c-1", total="60.00"))
    for handle in (first, other, repeat):
        await handle.result()

    with kit.sessions() as session:
        [row] = finance.summary(session, creator.lower())

    assert (row["creator"], row["kind"], row["referred_customers"], row["repeat_customers"],
            row["repeat_rate"]) == (creator, "creator", 2, 1, "0.50")
    assert [(c["milestone"], c["status"], c["count"], c["amount"]) for c in row["credits"]] == [
        ("first_repeat_purchase", "approved", 1, "5.00"),
        ("referral", "approved", 2, "10.00"),
        ("spend:100", "approved", 1, "10.00"),
    ]
    assert "2 referred customer(s), repeat rate 0.50" in finance.summary_table([row])
