"""The app database: purchases, customers, creators, the email record and the credit ledger.

Unique constraints here are what make effects exactly-once: an email step is keyed by its
idempotency key (workflow id + step), a credit by referrer + customer + milestone.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, func, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from database.types import Money, UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), Decimal: Money()}


class Customer(Base):
    """A shop's customer. Personal fields are nullable so `erase-customer` can blank them."""

    __tablename__ = "shop_customer"
    __table_args__ = (UniqueConstraint("shop_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(320))
    email_normalized: Mapped[str | None] = mapped_column(String(320), index=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    marketing_consent: Mapped[bool] = mapped_column(default=False)
    referral_code: Mapped[str | None] = mapped_column(String(32), unique=True)
    unsubscribed_at: Mapped[datetime | None]
    erased_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Purchase(Base):
    """One order as the shop reported it; stored before its lifecycle starts."""

    __tablename__ = "shop_purchase"
    __table_args__ = (UniqueConstraint("shop_id", "order_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(128))
    customer_pk: Mapped[int] = mapped_column(ForeignKey("shop_customer.id"), index=True)
    placed_at: Mapped[datetime]
    total: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    referral_code: Mapped[str | None] = mapped_column(String(64))
    attribution: Mapped[str | None] = mapped_column(String(32))
    referrer_code: Mapped[str | None] = mapped_column(String(64), index=True)
    workflow_id: Mapped[str] = mapped_column(String(300), unique=True)
    lifecycle_started_at: Mapped[datetime | None]
    repeat_routed_at: Mapped[datetime | None]
    window_closes_at: Mapped[datetime | None]
    refunded_amount: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    customer: Mapped[Customer] = relationship(lazy="joined", innerjoin=True)

    @property
    def skus(self) -> list[str]:
        return skus_of(self.items)


def skus_of(items: list[dict[str, Any]]) -> list[str]:
    """The products an order holds, each once, in the order overrides are chosen by."""
    return sorted({item["sku"] for item in items})


class Creator(Base):
    __tablename__ = "creator_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Refund(Base):
    __tablename__ = "shop_refund"
    __table_args__ = (UniqueConstraint("shop_id", "refund_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(128), index=True)
    refund_key: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal]
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class EmailSend(Base):
    """One email step of one lifecycle: sent, skipped (with why), failing (with the error), or
    deferred by the frequency cap (`skip_reason` says so) until `deferred_until`."""

    __tablename__ = "email_send"

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(400), unique=True)
    workflow_id: Mapped[str] = mapped_column(String(300), index=True)
    shop_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str] = mapped_column(String(128))
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    step: Mapped[str] = mapped_column(String(64))
    skus: Mapped[list[str]] = mapped_column(JSON, default=list)
    marketing: Mapped[bool] = mapped_column(default=True, server_default=true())
    status: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    template_name: Mapped[str | None] = mapped_column(String(300))
    template_hash: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(500))
    provider: Mapped[str | None] = mapped_column(String(16))
    provider_message_id: Mapped[str | None] = mapped_column(String(400), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    deferred_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class OutboxMessage(Base):
    """An email kept instead of sent, when no SendGrid key is configured."""

    __tablename__ = "email_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_send_id: Mapped[int] = mapped_column(ForeignKey("email_send.id"), unique=True)
    email_send: Mapped[EmailSend] = relationship()
    to_email: Mapped[str | None] = mapped_column(String(320))
    from_email: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    html: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ReferralClick(Base):
    """One visit of a tracked referral link `/r/{code}`. Only the code, its shop and the time
    are kept: no address, user agent or cookie, so a click says nothing about who clicked."""

    __tablename__ = "referral_click"
    __table_args__ = (Index("ix_referral_click_code", "code", "shop_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    shop_id: Mapped[str] = mapped_column(String(64))
    referrer_kind: Mapped[str] = mapped_column(String(16))
    clicked_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Credit(Base):
    """A ledger entry owed to a referrer. Clawbacks are negative entries, never edits."""

    __tablename__ = "credit_ledger"
    __table_args__ = (
        UniqueConstraint("shop_id", "referrer_code", "customer_id", "milestone"),
        Index("ix_credit_ledger_status", "status", "referrer_code"),
        Index("ix_credit_ledger_payout_batch", "payout_batch"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[str] = mapped_column(String(64))
    referrer_kind: Mapped[str] = mapped_column(String(16))
    referrer_code: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(128))
    order_id: Mapped[str] = mapped_column(String(128), index=True)
    workflow_id: Mapped[str] = mapped_column(String(300))
    milestone: Mapped[str] = mapped_column(String(80))
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reverses_credit_id: Mapped[int | None] = mapped_column(ForeignKey("credit_ledger.id"))
    approve_after: Mapped[datetime]
    approved_at: Mapped[datetime | None]
    reversed_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    payout_batch: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AuditEntry(Base):
    """Who did what to a lifecycle, and why: every support action leaves one. `action_key`
    makes a repeated command find its first entry instead of adding another."""

    __tablename__ = "support_audit"
    __table_args__ = (
        Index("ux_support_audit_action_key", "action_key", unique=True),
        Index("ix_support_audit_customer", "shop_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))
    shop_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[str | None] = mapped_column(String(128), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(1000))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    action_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PayoutBatch(Base):
    """One payout finance made; its unique batch id makes `credits mark-paid` idempotent."""

    __tablename__ = "credit_payout_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(100), unique=True)
    credit_count: Mapped[int]
    actor: Mapped[str | None] = mapped_column(String(200))
    totals: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class EmailEvent(Base):
    """One event of SendGrid's Event Webhook, kept once by its `sg_event_id` (SendGrid retries a
    batch for 24 hours). No address, URL or bounce text is kept: those may name the customer."""

    __tablename__ = "email_event"
    __table_args__ = (Index("ix_email_event_customer", "shop_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sg_event_id: Mapped[str] = mapped_column(String(100), unique=True)
    event: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    email_send_id: Mapped[int | None] = mapped_column(ForeignKey("email_send.id"), index=True)
    shop_id: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(128))
    sg_message_id: Mapped[str | None] = mapped_column(String(400))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class EmailSuppression(Base):
    """Why marketing email to a customer stops though they never unsubscribed with us: the
    address bounced, reported spam, unsubscribed at SendGrid, or deferred too often in a row.
    `reason` is None while the customer is not suppressed (the row still counts deferrals)."""

    __tablename__ = "email_suppression"
    __table_args__ = (UniqueConstraint("shop_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shop_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(String(32))
    suppressed_at: Mapped[datetime | None]
    sg_event_id: Mapped[str | None] = mapped_column(String(100))
    deferrals_in_a_row: Mapped[int] = mapped_column(default=0)
    lifted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
