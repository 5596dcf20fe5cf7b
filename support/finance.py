"""Finance's view of the credit ledger: exports, payout batches, a per-creator summary.

A payout batch is applied at most once: its id is unique in `credit_payout_batch`, the same file
applied again changes nothing, and a file that does not match the ledger (an unknown credit, one
not approved yet, one already paid, or a batch id reused for other credits) writes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from database.models import Credit, PayoutBatch, ReferralClick
from ledger.credits import CreditStatus
from support.errors import ActionRefused

STATUSES = tuple(status.value for status in CreditStatus)
COLUMNS = (
    "id", "shop_id", "referrer_kind", "referrer_code", "customer_id", "order_id", "milestone",
    "amount", "currency", "status", "created_at", "approve_after", "approved_at", "reversed_at",
    "paid_at", "payout_batch", "reverses_credit_id",
)


@dataclass(frozen=True)
class CreditFilter:
    creator: str | None = None
    status: str | None = None
    since: datetime | None = None
    shop_id: str | None = None


def parse_since(raw: str) -> datetime:
    """A date (midnight UTC) or an ISO 8601 time with a zone."""
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise ActionRefused("since", f"{raw!r} is not a date (2026-11-01) or ISO time") from None
    if parsed.tzinfo is None:
        raise ActionRefused("since", f"{raw!r} has no time zone (add Z or +01:00)")
    return parsed


def list_credits(session: Session, wanted: CreditFilter) -> list[dict[str, Any]]:
    if wanted.status is not None and wanted.status not in STATUSES:
        raise ActionRefused("status", f"{wanted.status!r}: one of {', '.join(STATUSES)}")
    query = select(Credit).order_by(Credit.id)
    if wanted.creator:
        query = query.where(func.upper(Credit.referrer_code) == wanted.creator.strip().upper())
    if wanted.status:
        query = query.where(Credit.status == wanted.status)
    if wanted.since:
        query = query.where(Credit.created_at >= wanted.since)
    if wanted.shop_id:
        query = query.where(Credit.shop_id == wanted.shop_id)
    return [_row(credit) for credit in session.scalars(query)]


def _row(credit: Credit) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in COLUMNS:
        value = getattr(credit, column)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        row[column] = value
    return row


FORMULA_START = tuple("=+-@\t\r\uff1d\uff0b\uff0d\uff20")  # and their full-width forms
NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")


def spreadsheet_cell(value: Any) -> Any:
    """A text a spreadsheet would run as a formula (`=HYPERLINK(…)`, `=cmd|' /C calc'!A0`,
    `@SUM(…)`) starts with `'`, which Excel and LibreOffice show as text; a plain number such as
    a clawback's `-5.00` stays a number."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.match(value):
        return "'" + value
    return value


def as_csv(rows: list[dict[str, Any]]) -> str:
    """The ledger for spreadsheets: every cell through `spreadsheet_cell`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: spreadsheet_cell(value) for key, value in row.items()} for row in rows)
    return out.getvalue()


def as_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'id':>6}  {'creator':<14} {'milestone':<28} {'amount':>10} cur {'status':<9} "
             f"{'order':<12} created"]
    for r in rows:
        lines.append(
            f"{r['id']:>6}  {r['referrer_code']:<14} {r['milestone']:<28} {r['amount']:>10} "
            f"{r['currency']} {r['status']:<9} {r['order_id']:<12} {r['created_at'][:19]}"
            + (f"  batch {r['payout_batch']}" if r["payout_batch"] else "")
        )
    totals = _totals((Decimal(r["amount"]), r["currency"]) for r in rows)
    lines.append(f"{len(rows)} credit(s); total " + (", ".join(
        f"{amount} {currency}" for currency, amount in totals.items()) or "0"))
    return "\n".join(lines)


def _totals(amounts: Any) -> dict[str, str]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for amount, currency in amounts:
        sums[currency] += amount
    return {currency: str(total) for currency, total in sorted(sums.items())}


# Payout batches


@dataclass(frozen=True)
class PayoutFile:
    batch_id: str
    credit_ids: list[int]


@dataclass(frozen=True)
class MarkedPaid:
    batch_id: str
    applied: bool
    credit_count: int
    totals: dict[str, str]


def read_payout_file(path: Path) -> PayoutFile:
    """JSON `{"batch_id": ..., "credit_ids": [...]}`, or CSV with `batch_id` and `credit_id`
    (or `id`) columns, one row per credit (the `credits --format csv` export plus a batch id)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ActionRefused("batch", f"{path}: {error.strerror}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ActionRefused("batch", f"{path}: not valid JSON ({error.msg})") from None
        if not isinstance(raw, dict):
            raise ActionRefused("batch", f"{path}: expected an object with batch_id and credit_ids")
        return _payout(raw.get("batch_id"), raw.get("credit_ids"))
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise ActionRefused("credit_ids", f"{path}: no credits listed")
    id_column = "credit_id" if "credit_id" in rows[0] else "id"
    if id_column not in rows[0] or "batch_id" not in rows[0]:
        raise ActionRefused("batch", f"{path}: CSV needs batch_id and credit_id columns")
    batch_ids = {row["batch_id"] for row in rows}
    if len(batch_ids) != 1:
        raise ActionRefused("batch_id", f"{path}: one batch per file, found {sorted(batch_ids)}")
    return _payout(batch_ids.pop(), [row[id_column] for row in rows])


def _payout(batch_id: Any, credit_ids: Any) -> PayoutFile:
    if not isinstance(batch_id, str) or not batch_id.strip() or len(batch_id) > 100:
        raise ActionRefused("batch_id", "must be a non-empty text of at most 100 characters")
    if not isinstance(credit_ids, list) or not credit_ids:
        raise ActionRefused("credit_ids", "must be a non-empty list of credit ids")
    try:
        ids = [int(str(value).strip()) for value in credit_ids]
    except ValueError:
        raise ActionRefused("credit_ids", "every credit id must be a whole number") from None
    if len(set(ids)) != len(ids):
        raise ActionRefused("credit_ids", "a credit is listed twice")
    return PayoutFile(batch_id.strip(), sorted(ids))


def mark_paid(
    sessions: sessionmaker[Session], batch: PayoutFile, actor: str, now: datetime | None = None,
) -> MarkedPaid:
    now = now or datetime.now(UTC)
    try:
        with sessions.begin() as session:
            done = _already_applied(session, batch)
            if done is not None:
                return done
            credits = session.scalars(
                select(Credit).where(Credit.id.in_(batch.credit_ids)).with_for_update()
            ).all()
            _check_payable(batch, credits)
            totals = _totals((c.amount, c.currency) for c in credits)
            session.add(PayoutBatch(batch_id=batch.batch_id, credit_count=len(credits),
                                    actor=actor, totals=totals))
            for credit in credits:
                credit.status = CreditStatus.PAID
                credit.paid_at, credit.payout_batch = now, batch.batch_id
            session.flush()
            return MarkedPaid(batch.batch_id, True, len(credits), totals)
    except IntegrityError:
        with sessions() as session:  # another run applied this batch id first
            done = _already_applied(session, batch)
        if done is None:
            raise
        return done


def _already_applied(session: Session, batch: PayoutFile) -> MarkedPaid | None:
    existing = session.scalar(select(PayoutBatch).where(PayoutBatch.batch_id == batch.batch_id))
    if existing is None:
        return None
    paid = sorted(session.scalars(
        select(Credit.id).where(Credit.payout_batch == batch.batch_id)
    ))
    if paid != batch.credit_ids:
        extra = sorted(set(batch.credit_ids) - set(paid))
        missing = sorted(set(paid) - set(batch.credit_ids))
        raise ActionRefused(
            "batch_id",
            f"batch {batch.batch_id} was already paid with other credits "
            f"(file adds {extra or 'none'}, leaves out {missing or 'none'}); nothing written",
        )
    return MarkedPaid(batch.batch_id, False, existing.credit_count, existing.totals or {})


def _check_payable(batch: PayoutFile, credits: Any) -> None:
    found = {credit.id: credit for credit in credits}
    problems = [f"{cid} does not exist" for cid in batch.credit_ids if cid not in found]
    for credit in found.values():
        if credit.status == CreditStatus.PAID:
            problems.append(f"{credit.id} is already paid in batch {credit.payout_batch}")
        elif credit.status != CreditStatus.APPROVED:
            problems.append(f"{credit.id} is {credit.status}, not approved")
    if problems:
        raise ActionRefused("credit_ids", "; ".join(problems) + "; nothing written")


# Per-creator summary


def summary(session: Session, creator: str | None = None) -> list[dict[str, Any]]:
    """Per referrer: customers referred, share who bought again, credits by milestone/status,
    and clicks of their tracked link (a code clicked but never bought with is listed too)."""
    query = select(Credit).order_by(Credit.referrer_code, Credit.id)
    if creator:
        query = query.where(func.upper(Credit.referrer_code) == creator.strip().upper())
    by_referrer: dict[str, dict[str, Any]] = {}
    sums: dict[tuple[str, str, str, str], list[Any]] = {}
    for credit in session.scalars(query):
        entry = by_referrer.setdefault(credit.referrer_code, {
            "creator": credit.referrer_code, "kind": credit.referrer_kind,
            "referred": set(), "repeat": set(),
        })
        if credit.milestone == "referral":
            entry["referred"].add((credit.shop_id, credit.customer_id))
        elif credit.milestone == "first_repeat_purchase":
            entry["repeat"].add((credit.shop_id, credit.customer_id))
        key = (credit.referrer_code, credit.milestone, credit.status, credit.currency)
        slot = sums.setdefault(key, [0, Decimal(0)])
        slot[0] += 1
        slot[1] += credit.amount
    clicks = _clicks(session, creator)
    for code, kind in clicks:
        by_referrer.setdefault(code, {"creator": code, "kind": kind, "referred": set(),
                                      "repeat": set()})
    result = []
    for code, entry in by_referrer.items():
        referred, repeat = len(entry["referred"]), len(entry["repeat"] & entry["referred"])
        result.append({
            "creator": code,
            "kind": entry["kind"],
            "referred_customers": referred,
            "repeat_customers": repeat,
            "repeat_rate": str((Decimal(repeat) / referred).quantize(Decimal("0.01")))
            if referred else "0.00",
            "clicks": sum(n for (c, _), n in clicks.items() if c == code),
            "credits": [
                {"milestone": m, "status": s, "currency": cur, "count": n, "amount": str(total)}
                for (c, m, s, cur), (n, total) in sorted(sums.items()) if c == code
            ],
        })
    return sorted(result, key=lambda row: row["creator"])


def _clicks(session: Session, creator: str | None) -> dict[tuple[str, str], int]:
    query = (select(ReferralClick.code, ReferralClick.referrer_kind, func.count())
             .group_by(ReferralClick.code, ReferralClick.referrer_kind))
    if creator:
        query = query.where(func.upper(ReferralClick.code) == creator.strip().upper())
    return {(code, kind): n for code, kind, n in session.execute(query)}


def summary_table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        lines.append(f"{r['creator']} ({r['kind']}): {r['referred_customers']} referred "
                     f"customer(s), repeat rate {r['repeat_rate']}, "
                     f"{r['clicks']} link click(s)")
        for c in r["credits"]:
            lines.append(f"    {c['milestone']:<28} {c['status']:<9} {c['count']:>4} credit(s) "
                         f"{c['amount']:>10} {c['currency']}")
    return "\n".join(lines) or "no credits or clicks"
