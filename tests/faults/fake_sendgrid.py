"""A stand-in for SendGrid's Mail Send endpoint that misbehaves on purpose and keeps count.

SendGrid has no idempotency of its own, so the only place to see a duplicate is the provider:
this server records every message it accepts under the idempotency key the sender puts in the
personalization's `custom_args`. Faults are decided per key and attempt (seeded), plus an outage
window during which every request gets a 503:

- `429`: rate limited on the first attempt;
- `5xx`: 500 then 503 on the first two attempts;
- `hang`: the first attempt is held past the client's timeout, then dropped without accepting;
- `late_accept`: the first attempt is held past the client's timeout and then accepted, as a slow
  SendGrid might: the sender never sees the 202, retries, and the customer gets the email twice.
  This is the known window of a provider without idempotency (activities/emails.py).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = {"429": 0.08, "5xx": 0.08, "hang": 0.02, "late_accept": 0.01}


@dataclass
class Accepted:
    """One message the provider took: the customer got it."""

    message_id: str
    requested_at: float
    at: float
    answered: bool  # False: accepted after the client had given up (late_accept)


@dataclass
class ProviderLog:
    accepted: dict[str, list[Accepted]] = field(default_factory=lambda: defaultdict(list))
    attempts: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: dict[str, str] = field(default_factory=dict)


class FaultySendGrid:
    def __init__(
        self, api_key: str, *, seed: int, client_timeout_s: float, faults: dict[str, float] = FAULTS
    ) -> None:
        self.api_key = api_key
        self.seed = seed
        self.hold_s = client_timeout_s + 1.5
        self.fault_rates = faults
        self.log = ProviderLog()
        self.outage: tuple[float, float] = (0.0, 0.0)
        self._lock = threading.Lock()

    def outage_for(self, start_in_s: float, length_s: float) -> None:
        now = time.monotonic()
        self.outage = (now + start_in_s, now + start_in_s + length_s)

    def fault_for(self, key: str) -> str | None:
        draw = random.Random(f"{self.seed}:{key}").random()
        for name, rate in self.fault_rates.items():
            if draw < rate:
                return name
            draw -= rate
        return None

    def decide(self, key: str) -> tuple[int, str]:
        """(attempt number, what to do): 202, 401, 429, 500, 503, hang, late_accept."""
        with self._lock:
            self.log.attempts[key] += 1
            attempt = self.log.attempts[key]
            fault = self.fault_for(key)
            if fault:
                self.log.faults[key] = fault
        start, end = self.outage
        if start <= time.monotonic() < end:
            return attempt, "503"
        if fault == "429" and attempt == 1:
            return attempt, "429"
        if fault == "5xx" and attempt <= 2:
            return attempt, "500" if attempt == 1 else "503"
        if fault in ("hang", "late_accept") and attempt == 1:
            return attempt, fault
        return attempt, "202"

    def accept(self, key: str, requested_at: float, *, answered: bool) -> str:
        message_id = f"fake-{uuid.uuid4().hex[:16]}"
        with self._lock:
            self.log.accepted[key].append(
                Accepted(message_id, requested_at, time.monotonic(), answered)
            )
        return message_id

    def count(self, outcome: str) -> None:
        with self._lock:
            self.log.outcomes[outcome] += 1

    @contextmanager
    def serving(self) -> Iterator[str]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                requested_at = time.monotonic()
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                except ValueError:
                    provider.count("truncated")  # the worker was killed mid-request
                    self.close_connection = True
                    return None
                if self.headers.get("Authorization") != f"Bearer {provider.api_key}":
                    provider.count("401")
                    return self._answer(401, {"errors": [{"message": "bad key"}]})
                key = body["personalizations"][0]["custom_args"]["idempotency_key"]
                _attempt, action = provider.decide(key)
                provider.count(action)
                if action == "202":
                    message_id = provider.accept(key, requested_at, answered=True)
                    return self._answer(202, None, {"X-Message-Id": message_id})
                if action in ("hang", "late_accept"):
                    time.sleep(provider.hold_s)
                    if action == "late_accept":
                        provider.accept(key, requested_at, answered=False)
                    self.close_connection = True
                    return None
                return self._answer(int(action), {"errors": [{"message": f"fault {action}"}]})

            def _answer(
                self, status: int, body: object, headers: dict[str, str] | None = None
            ) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the worker was killed while we answered

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
