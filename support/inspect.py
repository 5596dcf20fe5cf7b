"""One lifecycle's timeline, from the workflow (where it is, what is next) and the database
(what was sent, skipped and credited). Works for closed lifecycles too."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from database.models import AuditEntry, Credit, EmailSend, Purchase, Refund
from workflows.lifecycle import PurchaseLifecycle


def _money(value: Any) -> str:
    return str(value)


def lifecycle_record(session: Session, shop_id: str, order_id: str) -> dict[str, Any] | None:
    purchase = session.scalar(
        select(Purchase).where(Purchase.shop_id == shop_id, Purchase.order_id == order_id)
    )
    if purchase is None:
        return None
    emails = session.scalars(
        select(EmailSend).where(EmailSend.workflow_id == purchase.workflow_id).order_by(EmailSend.id)
    ).all()
    ledger = session.scalars(
        select(Credit).where(
            (Credit.workflow_id == purchase.workflow_id) | (Credit.order_id == order_id),
            Credit.shop_id == shop_id,
        ).order_by(Credit.id)
    ).all()
    refunds = session.scalars(
        select(Refund).where(Refund.shop_id == shop_id, Refund.order_id == order_id).order_by(Refund.id)
    ).all()
    audit = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.shop_id == shop_id, AuditEntry.order_id == order_id)
        .order_by(AuditEntry.id)
    ).all()
    customer = purchase.customer
    return {
        "workflow_id": purchase.workflow_id,
        "shop_id": shop_id,
        "order_id": order_id,
        "customer_id": customer.customer_id,
        "placed_at": purchase.placed_at.isoformat(),
        "total": _money(purchase.total),
        "currency": purchase.currency,
        "referral_code": purchase.referral_code,
        "attribution": purchase.attribution,
        "referrer_code": purchase.referrer_code,
        "refunded_amount": _money(purchase.refunded_amount),
        "unsubscribed_at": customer.unsubscribed_at.isoformat() if customer.unsubscribed_at else None,
        "emails": [
            {
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
                "sent_at": e.sent_at.isoformat() if e.sent_at else None,
                "idempotency_key": e.idempotency_key,
            }
            for e in emails
        ],
        "credits": [
            {
                "id": c.id,
                "milestone": c.milestone,
                "referrer": c.referrer_code,
                "referrer_kind": c.referrer_kind,
                "order_id": c.order_id,
                "amount": _money(c.amount),
                "currency": c.currency,
                "status": c.status,
                "approve_after": c.approve_after.isoformat(),
                "payout_batch": c.payout_batch,
            }
            for c in ledger
        ],
        "refunds": [
            {"amount": _money(r.amount), "reason": r.reason, "at": r.created_at.isoformat()}
            for r in refunds
        ],
        "audit": [
            {"action": a.action, "actor": a.actor, "reason": a.reason, "at": a.created_at.isoformat()}
            for a in audit
        ],
    }


def _read_record(sessions: sessionmaker[Session], shop_id: str, order_id: str) -> dict[str, Any] | None:
    with sessions() as session:
        return lifecycle_record(session, shop_id, order_id)


async def inspect_lifecycle(
    sessions: sessionmaker[Session], client: Client, shop_id: str, order_id: str,
    ui_url: str = "http://localhost:8233",
) -> dict[str, Any] | None:
    record = await asyncio.to_thread(_read_record, sessions, shop_id, order_id)
    if record is None:
        return None
    handle = client.get_workflow_handle(record["workflow_id"])
    record["temporal_ui"] = (
        f"{ui_url}/namespaces/{quote(client.namespace)}/workflows/{quote(record['workflow_id'])}"
    )
    try:
        description = await handle.describe(rpc_timeout=timedelta(seconds=5))
        record["workflow_status"] = description.status.name if description.status else None
        record["pending_activities"] = [
            {
                "activity": p.activity_type.name,
                "attempt": p.attempt,
                "last_failure": p.last_failure.message if p.last_failure.message else None,
            }
            for p in description.raw_description.pending_activities
        ]
        status = await handle.query(PurchaseLifecycle.status, rpc_timeout=timedelta(seconds=5))
        record["lifecycle"] = dataclasses.asdict(status)
    except RPCError as error:
        record.setdefault("workflow_status", None)
        record["lifecycle"] = None
        record["temporal_error"] = error.message
    return record
