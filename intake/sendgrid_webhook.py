"""`POST /webhooks/sendgrid`: SendGrid's Signed Event Webhook. Verified, then parsed whole, then
recorded in one transaction (intake/sendgrid_store.py), so any 4xx has written nothing and a
2xx has written everything; SendGrid retries anything else for 24 hours. Mounted only when
`LOYALLOOP_SENDGRID_WEBHOOK_KEY` is set: without a key nothing could be verified (404)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import JSONResponse

from database.session import engine_of
from intake.sendgrid_events import parse_batch
from intake.sendgrid_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookVerifier
from intake.sendgrid_store import record_batch

PATH = "/webhooks/sendgrid"


def sendgrid_router(key: str, sessions: sessionmaker[Session]) -> APIRouter:
    verifier = WebhookVerifier(key)
    engine = engine_of(sessions)
    router = APIRouter()

    @router.post(PATH)
    async def sendgrid_events(request: Request) -> JSONResponse:
        body = await request.body()
        headers = request.headers
        verifier.verify(headers.get(SIGNATURE_HEADER), headers.get(TIMESTAMP_HEADER), body)
        events = parse_batch(body)
        recorded = await asyncio.to_thread(record_batch, engine, events)
        return JSONResponse({"received": recorded.received, "recorded": recorded.recorded,
                             "unmapped": recorded.unmapped})

    return router
