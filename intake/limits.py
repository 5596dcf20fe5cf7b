"""The body limit, enforced before anything is parsed: by the declared Content-Length, and by
counting the streamed body for senders that declare none (or declare less than they send)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intake.errors import EventRejected
from intake.responses import error_body

MAX_BODY_BYTES = 256 * 1024
# SendGrid posts its events in batches of up to 768 KB; the key is the path.
PATH_LIMITS = {"/webhooks/sendgrid": 2 * 1024 * 1024}


def too_large(limit: int) -> EventRejected:
    return EventRejected(413, "body", f"is larger than {limit // 1024} KiB")


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = PATH_LIMITS.get(scope["path"], self.limit)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                bad = EventRejected(400, "Content-Length", "is not a number of bytes")
                await refuse(send, bad)
                return
            if int(declared) > limit:
                await refuse(send, too_large(limit))
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, counted, send)


async def refuse(send: Send, error: EventRejected) -> None:
    """Answer before the app runs; the connection is closed, since the body was not read."""
    body = json.dumps(error_body(error.status, error.problems)).encode()
    headers = [(name.lower().encode(), value.encode())
               for name, value in (error.headers or {}).items()]
    await send({
        "type": "http.response.start",
        "status": error.status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
                    *headers],
    })
    await send({"type": "http.response.body", "body": body})
