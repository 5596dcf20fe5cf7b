"""Renders per second of the real templates, and the SendGrid sender's sends per second against
a local mock of the Mail Send endpoint (answers 202 at once, so the figure is our side's cost:
building the mail, the official client, HTTP)."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from messages.context import build_context, unsubscribe_url
from messages.render import TemplateRenderer
from messages.senders import Message, SendGridSender

STEPS = ("day_1", "day_7", "referral_prompt", "day_21")
SEND_THREADS = 8


@dataclass
class MessageFigures:
    renders_per_s: float
    sends_per_s: float
    sends_per_s_threads: float
    send_threads: int = SEND_THREADS


def _context(renderer: TemplateRenderer, step: str) -> dict:
    return build_context(
        step=step, shop=renderer.shop("bench"),
        customer={"first_name": "Ana", "locale": "en"},
        order={"id": "1001", "total": "49.00", "currency": "EUR",
               "placed_at": "2026-11-20T10:00:00+00:00",
               "items": [{"sku": "KETTLE-1", "name": "Pour-over kettle", "quantity": 1,
                          "unit_price": "49.00"}]},
        products=renderer.products(), referral_code="R-ABCDEFGH",
        creator={"name": "Maya", "code": "MAYA10"},
        unsubscribe=unsubscribe_url("https://loyalloop.example", "secret", "bench", "c-42"),
        public_url="https://loyalloop.example",
    )


def renders_per_s(templates_dir: Path, seconds: float) -> float:
    renderer = TemplateRenderer(templates_dir)
    contexts = {step: _context(renderer, step) for step in STEPS}
    for step in STEPS:  # compile once, as a running worker has
        renderer.render(step, contexts[step], locale="en", skus=["KETTLE-1"])
    done, began = 0, time.perf_counter()
    for step in itertools.cycle(STEPS):
        renderer.render(step, contexts[step], locale="en", skus=["KETTLE-1"])
        done += 1
        if done % 20 == 0 and time.perf_counter() - began > seconds:
            break
    return done / (time.perf_counter() - began)


class _MailSend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(202)
        self.send_header("X-Message-Id", "mock-message")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def sends_per_s(templates_dir: Path, seconds: float, threads: int) -> float:
    renderer = TemplateRenderer(templates_dir)
    rendered = renderer.render("day_1", _context(renderer, "day_1"), locale="en",
                               skus=["KETTLE-1"])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MailSend)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    sender = SendGridSender("SG.bench-key", host=f"http://127.0.0.1:{server.server_port}")
    message = Message(
        to_email="ana@example.com", to_name="Ana", from_email="hello@loyalloop.example",
        subject=rendered.subject, html=rendered.html, text=rendered.text,
        idempotency_key="purchase-bench-1001:day_1", categories=("day_1", "shop:bench"),
    )
    deadline = time.perf_counter() + seconds

    def send_until_deadline() -> int:
        sent = 0
        while time.perf_counter() < deadline:
            sender.send(None, 0, message)
            sent += 1
        return sent

    try:
        began = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            total = sum(pool.map(lambda _: send_until_deadline(), range(threads)))
        return total / (time.perf_counter() - began)
    finally:
        server.shutdown()
        server.server_close()


def run(templates_dir: Path, seconds: float) -> MessageFigures:
    return MessageFigures(
        renders_per_s=renders_per_s(templates_dir, seconds),
        sends_per_s=sends_per_s(templates_dir, seconds, 1),
        sends_per_s_threads=sends_per_s(templates_dir, seconds, SEND_THREADS),
    )
