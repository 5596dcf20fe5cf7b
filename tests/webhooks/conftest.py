"""SendGrid's Signed Event Webhook, driven as SendGrid drives it: batches signed in the test
with a P-256 key pair generated here (ECDSA SHA-256 over the timestamp header followed by the
raw body, the signature base64 DER), the public key configured as SendGrid's settings page
shows it (base64 DER SubjectPublicKeyInfo), posted over HTTP to the real intake app on real
databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from database.models import Customer, EmailEvent, EmailSend, EmailSuppression
from intake.app import create_app
from intake.service import LifecycleService
from settings import Settings

_ids = itertools.count(1)


def new_key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A private key and its public key as SendGrid shows it: base64 of DER SPKI."""
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


def sign(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> dict[str, str]:
    signature = private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """One event as SendGrid posts it; custom args are top-level keys of the event."""
    return {"email": "ana@example.com", "timestamp": int(time.time()),
            "sg_event_id": f"ev-{uuid.uuid4().hex}", "event": kind, **fields}


@dataclass
class Webhook:
    http: httpx.AsyncClient
    sessions: sessionmaker[Session]
    private: ec.EllipticCurvePrivateKey
    shop_id: str = field(default_factory=lambda: f"shop-{uuid.uuid4().hex[:10]}")

    async def post(self, events: Any, *, timestamp: str | None = None,
                   body: bytes | None = None, headers: dict[str, str] | None = None
                   ) -> httpx.Response:
        raw = body if body is not None else json.dumps(events).encode()
        signed = sign(self.private, raw, timestamp or str(int(time.time())))
        return await self.http.post("/webhooks/sendgrid", content=raw,
                                    headers=signed if headers is None else headers)

    def customer(self, customer_id: str = "c-42", email: str = "ana@example.com",
                 shop_id: str | None = None) -> str:
        with self.sessions.begin() as session:
            session.add(Customer(shop_id=shop_id or self.shop_id, customer_id=customer_id,
                                 email=email, email_normalized=email.lower(),
                                 marketing_consent=True))
        return customer_id

    def email(self, customer_id: str = "c-42", *, status: str = "sent",
              message_id: str | None = None, shop_id: str | None = None,
              step: str = "day_1") -> int:
        shop = shop_id or self.shop_id
        with self.sessions.begin() as session:
            row = EmailSend(
                idempotency_key=f"k-{uuid.uuid4().hex}", workflow_id=f"purchase-{shop}-1",
                shop_id=shop, order_id="1", customer_id=customer_id, step=step, skus=[],
                status=status, provider_message_id=message_id,
            )
            session.add(row)
            session.flush()
            return row.id

    def row(self, email_id: int) -> EmailSend:
        with self.sessions() as session:
            return session.get_one(EmailSend, email_id)

    def suppression(self, customer_id: str = "c-42",
                    shop_id: str | None = None) -> EmailSuppression | None:
        with self.sessions() as session:
            return session.scalar(select(EmailSuppression).where(
                EmailSuppression.shop_id == (shop_id or self.shop_id),
                EmailSuppression.customer_id == customer_id))

    def events(self) -> list[EmailEvent]:
        with self.sessions() as session:
            return list(session.scalars(select(EmailEvent).order_by(EmailEvent.id)))

    def written(self) -> tuple[int, ...]:
        """Every row the webhook may write or change, to prove a refusal changed none."""
        with self.sessions() as session:
            counts = tuple(session.scalar(select(func.count()).select_from(model)) or 0
                           for model in (EmailEvent, EmailSuppression))
            sent = session.scalar(select(func.count()).select_from(EmailSend)
                                  .where(EmailSend.status == "sent")) or 0
            return (*counts, sent)


def webhook_app(sessions: sessionmaker[Session], key: str | None):  # type: ignore[no-untyped-def]
    """The real intake app. The webhook needs no Temporal, so the service gets no client."""
    settings = Settings(sendgrid_webhook_key=key, sendgrid_api_key=None)
    service = LifecycleService(sessions, None, task_queue="unused",  # type: ignore[arg-type]
                               email_task_queue="unused", rules=settings.rules())
    return create_app(settings, service)


@pytest.fixture
async def webhook(sessions: sessionmaker[Session]) -> AsyncIterator[Webhook]:
    private, public = new_key_pair()
    transport = httpx.ASGITransport(app=webhook_app(sessions, public))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        yield Webhook(http, sessions, private)


def utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
