"""SendGrid events ingested per second: signed batches of 1,000 events, as SendGrid posts them,
into `loyalloop api` (uvicorn, its own process) on PostgreSQL, each event mapped to a seeded
email by its custom args. Batches are signed before the clock starts (signing is SendGrid's
work), and every event is counted in the database after, to prove each was recorded once."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from dataclasses import dataclass

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from bench.cluster import usage
from bench.http_load import Connection
from bench.intake import _stop_api, start_api, wait_healthy
from database.models import Customer, EmailEvent, EmailSend

BATCH = 1000
GOAL_PER_S = 5000
CALLERS = 4  # SendGrid posts a few batches at a time
# what a day of a shop's events looks like, by kind
MIX = [("processed", 30), ("delivered", 30), ("open", 24), ("click", 10), ("deferred", 4),
       ("bounce", 1), ("spamreport", 1)]


@dataclass(frozen=True)
class Events:
    events: int
    per_s: float
    recorded: int
    cpu_ms_per_1000: float


def seed(sessions: sessionmaker[Session], shop_id: str, emails: int) -> list[int]:
    with sessions.begin() as session:
        session.execute(insert(Customer), [
            {"shop_id": shop_id, "customer_id": f"c-{i}", "email": f"c{i}@bench.example",
             "email_normalized": f"c{i}@bench.example", "marketing_consent": True}
            for i in range(emails)])
        return list(session.scalars(insert(EmailSend).returning(EmailSend.id), [
            {"idempotency_key": f"{shop_id}:{i}", "workflow_id": f"purchase-{shop_id}-{i}",
             "shop_id": shop_id, "order_id": str(i), "customer_id": f"c-{i}", "step": "day_1",
             "skus": [], "status": "sent", "provider": "sendgrid",
             "provider_message_id": f"m{shop_id}{i}", "attempts": 1}
            for i in range(emails)]))


def batches(email_ids: list[int], shop_id: str, count: int) -> list[list[dict[str, object]]]:
    kinds = [kind for kind, share in MIX for _ in range(share)]
    now = int(time.time())
    out = []
    for b in range(count):
        out.append([{
            "email": f"c{n % len(email_ids)}@bench.example", "timestamp": now,
            "event": kinds[n % len(kinds)], "sg_event_id": f"{shop_id}-{b}-{n}",
            "sg_message_id": f"m{shop_id}{n % len(email_ids)}.filterdrecv-1",
            "email_id": str(email_ids[n % len(email_ids)]), "shop_id": shop_id,
            "category": ["day_1", f"shop:{shop_id}"], "useragent": "Mozilla/5.0 (bench)",
        } for n in range(b * BATCH, (b + 1) * BATCH)])
    return out


def signed(private: ec.EllipticCurvePrivateKey, events: object) -> tuple[str, bytes]:
    """The batch's headers (as raw HTTP lines) and body, signed as SendGrid signs them."""
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    signature = private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return (
        "Content-Type: application/json\r\n"
        f"X-Twilio-Email-Event-Webhook-Signature: {base64.b64encode(signature).decode()}\r\n"
        f"X-Twilio-Email-Event-Webhook-Timestamp: {stamp}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ), body


async def post_all(base_url: str, requests: list[tuple[str, bytes]]) -> float:
    """Post every batch over CALLERS keep-alive connections; the seconds taken. A batch not
    answered 200 stops the run: its events were not recorded."""
    queue = iter(requests)

    async def caller() -> None:
        async with Connection(base_url, {}) as connection:
            for head, body in queue:
                response = await connection.send(
                    f"POST /webhooks/sendgrid HTTP/1.1\r\n{connection.head}{head}".encode()
                    + body)
                if response.status != 200:
                    raise RuntimeError(f"webhook answered {response.status}: "
                                       f"{response.body[:300]!r}")

    began = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    return time.perf_counter() - began


async def run(address: str, database_url: str, sessions: sessionmaker[Session],
              batch_count: int) -> Events:
    shop_id = f"events-{uuid.uuid4().hex[:8]}"
    private = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    email_ids = seed(sessions, shop_id, 2000)
    warmup, timed = batches(email_ids, f"{shop_id}w", CALLERS), batches(
        email_ids, shop_id, batch_count)
    process, base_url = start_api(address, database_url, shop_id, f"events-{shop_id}",
                                  extra_env={"LOYALLOOP_SENDGRID_WEBHOOK_KEY": public})
    try:
        async with httpx.AsyncClient(base_url=base_url) as http:
            await wait_healthy(http, process)
        requests = [signed(private, batch) for batch in warmup + timed]
        await post_all(base_url, requests[:CALLERS])  # first-call costs, not counted
        cpu_before = usage(process.pid).cpu_s
        seconds = await post_all(base_url, requests[CALLERS:])
        cpu_s = usage(process.pid).cpu_s - cpu_before
    finally:
        _stop_api(process, profiled=False)
    with sessions() as session:
        recorded = session.scalar(select(func.count()).select_from(EmailEvent)
                                  .where(EmailEvent.sg_event_id.like(f"{shop_id}-%"))) or 0
    events = batch_count * BATCH
    return Events(events, events / seconds, recorded, cpu_s * 1000 / (events / 1000))
