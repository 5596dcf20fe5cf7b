"""One lifecycle's timeline, from the database (what was sent, skipped, credited, refunded and
done by support) and from Temporal (where a running lifecycle is and what comes next; how a
closed one ended). A closed lifecycle is read from its description and result, not queried, so
it needs no worker. In the intake, whose lifecycle endpoint serves it, so that `loyalloop
inspect` (cli/support.py) and the endpoint read one model and imports point down."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from database.models import AuditEntry, Credit, Customer, EmailSend, Purchase, Refund
from intake import delivery
from workflows import search
from workflows.lifecycle import PurchaseLifecycle

RPC_TIMEOUT = timedelta(seconds=5)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def lifecycle_record(session: Session, shop_id: str, order_id: str) -> dict[str, Any] | None:
    purchase = session.scalar(
        select(Purchase).where(Purchase.shop_id == shop_id, Purchase.order_id == order_id)
    )
    if purchase is None:
        return None
    customer = purchase.customer
    emails = session.scalars(
        select(EmailSend)
        .where(EmailSend.workflow_id == purchase.workflow_id)
        .order_by(EmailSend.id)
    ).all()
    ledger = session.scalars(
        select(Credit).where(
            (Credit.workflow_id == purchase.workflow_id) | (Credit.order_id == order_id),
            Credit.shop_id == shop_id,
        ).order_by(Credit.id)
    ).all()
    sent = delivery.deliveries(session, (e.id for e in emails))
    refunds = session.scalars(
        select(Refund)
        .where(Refund.shop_id == shop_id, Refund.order_id == order_id)
        .order_by(Refund.id)
    ).all()
    return {
        "workflow_id": purchase.workflow_id,
        "shop_id": shop_id,
        "order_id": order_id,
        "customer_id": customer.customer_id,
        "placed_at": purchase.placed_at.isoformat(),
        "total": str(purchase.total),
        "currency": purchase.currency,
        "referral_code": purchase.referral_code,
        "attribution": purchase.attribution,
        "referrer_code": purchase.referrer_code,
        "refunded_amount": str(purchase.refunded_amount),
        "unsubscribed_at": _iso(customer.unsubscribed_at),
        "erased_at": _iso(customer.erased_at),
        "emails": [_email(e, sent.get(e.id)) for e in emails],
        "suppression": delivery.suppression(session, shop_id, customer.customer_id),
        "credits": [_credit(c) for c in ledger],
        "refunds": [
            {"amount": str(r.amount), "reason": r.reason, "at": r.created_at.isoformat()}
            for r in refunds
        ],
        "audit": [_audit(a) for a in _audit_entries(session, purchase, customer)],
    }


def _email(e: EmailSend, delivered: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "step": e.step,
        "status": e.status,
        "skip_reason": e.skip_reason,
        "template": e.template_name,
        "template_hash": e.template_hash,
        "subject": e.subject,
        "provider": e.provider,
        "provider_message_id": e.provider_message_id,
        "attempts": e.attempts,
        "last_error": e.last_error,
        "sent_at": _iso(e.sent_at),
        "decided_at": _iso(e.decided_at),
        "deferred_until": _iso(e.deferred_until),
        "idempotency_key": e.idempotency_key,
        "resend": e.idempotency_key.startswith("resend:"),
        "delivery": delivered or delivery.empty(),
    }


def _credit(c: Credit) -> dict[str, Any]:
    return {
        "id": c.id,
        "milestone": c.milestone,
        "referrer": c.referrer_code,
        "referrer_kind": c.referrer_kind,
        "order_id": c.order_id,
        "amount": str(c.amount),
        "currency": c.currency,
        "status": c.status,
        "approve_after": c.approve_after.isoformat(),
        "paid_at": _iso(c.paid_at),
        "payout_batch": c.payout_batch,
    }


def _audit_entries(session: Session, purchase: Purchase, customer: Customer) -> list[AuditEntry]:
    """This order's entries and the customer's own (unsubscribe, erasure)."""
    return list(session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.shop_id == purchase.shop_id,
            or_(
                AuditEntry.order_id == purchase.order_id,
                and_(AuditEntry.order_id.is_(None),
                     AuditEntry.customer_id == customer.customer_id),
            ),
        )
        .order_by(AuditEntry.id)
    ))


def _audit(a: AuditEntry) -> dict[str, Any]:
    return {"id": a.id, "action": a.action, "actor": a.actor, "reason": a.reason,
            "at": a.created_at.isoformat(), "detail": a.detail}


def _read_record(
    sessions: sessionmaker[Session], shop_id: str, order_id: str
) -> dict[str, Any] | None:
    with sessions() as session:
        return lifecycle_record(session, shop_id, order_id)


async def inspect_lifecycle(
    sessions: sessionmaker[Session], client: Client, shop_id: str, order_id: str,
    ui_url: str = "http://localhost:8233",
) -> dict[str, Any] | None:
    record = await asyncio.to_thread(_read_record, sessions, shop_id, order_id)
    if record is None:
        return None
    workflow_id = record["workflow_id"]
    record["temporal_ui"] = (
        f"{ui_url.rstrip('/')}/namespaces/{quote(client.namespace)}/workflows/{quote(workflow_id)}"
    )
    record["workflow_status"] = None
    record["lifecycle"] = None
    record["pending_activities"] = []
    try:
        await _from_temporal(client, workflow_id, record)
    except RPCError as error:
        record["temporal_error"] = error.message
    record["steps"] = _steps(record)
    record["unsubscribes"] = _unsubscribes(record)
    record["resubscribes"] = [{"at": a["at"], "by": a["actor"], "reason": a["reason"]}
                              for a in record["audit"] if a["action"] == "resubscribe"]
    return record


async def _from_temporal(client: Client, workflow_id: str, record: dict[str, Any]) -> None:
    handle = client.get_workflow_handle_for(PurchaseLifecycle.run, workflow_id)
    description = await handle.describe(rpc_timeout=RPC_TIMEOUT)
    status = description.status
    record["workflow_status"] = status.name if status else None
    record["closed_at"] = _iso(description.close_time)
    record["pending_activities"] = [
        {
            "activity": p.activity_type.name,
            "attempt": p.attempt,
            "last_failure": p.last_failure.message or None,
        }
        for p in description.raw_description.pending_activities
    ]
    if status == WorkflowExecutionStatus.RUNNING:
        life = await handle.query(PurchaseLifecycle.status, rpc_timeout=RPC_TIMEOUT)
        # times as the rest of the record has them: ISO strings
        record["lifecycle"] = {k: _iso(v) if isinstance(v, datetime) else v
                               for k, v in dataclasses.asdict(life).items()}
        return
    record["lifecycle"] = {
        "stage": description.typed_search_attributes.get(search.LIFECYCLE_STAGE),
        "next_step": None, "next_at": None, "steps_done": None,
    }
    if status == WorkflowExecutionStatus.COMPLETED:
        summary = await handle.result(follow_runs=False, rpc_timeout=RPC_TIMEOUT)
        record["summary"] = dataclasses.asdict(summary)


def _steps(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Each scheduled step done, with its outcome and time; the workflow's own account when it
    is running, the email record otherwise."""
    emails = {e["step"]: e for e in record["emails"] if not e["resend"]}
    life = record["lifecycle"] or {}
    done = life.get("steps_done")
    if done is None:
        done = {
            step: e["status"] + (f":{e['skip_reason']}" if e["skip_reason"] else "")
            for step, e in emails.items() if e["status"] in ("sent", "skipped", "failed")
        }
    steps = []
    for step, outcome in done.items():
        email = emails.get(step) or {}
        steps.append({"step": step, "outcome": outcome,
                      "at": email.get("sent_at") or email.get("decided_at")})
    return sorted(steps, key=lambda s: (s["at"] is None, s["at"] or ""))


def _unsubscribes(record: dict[str, Any]) -> list[dict[str, Any]]:
    by_support = [
        {"at": a["at"], "by": a["actor"], "reason": a["reason"]}
        for a in record["audit"] if a["action"] == "unsubscribe"
    ]
    if by_support or not record["unsubscribed_at"]:
        return by_support
    return [{"at": record["unsubscribed_at"], "by": "the customer or the shop", "reason": ""}]
