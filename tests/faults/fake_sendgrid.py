"""A stand-in for SendGrid's Mail Send endpoint that misbehaves on purpose and keeps count.

SendGrid has no idempotency of its own, so the only place to see a duplicate is the provider:
this server records every message it accepts under the idempotency key the sender puts in the
personalization's `custom_args`, and for each accepted copy what became of the request's answer
(the evidence the verdict needs to put a duplicate down to the known window: verdict.py).
Faults are decided per key and attempt (seeded), plus an outage window during which every
request gets a 503:

- `429`: rate limited on the first attempt;
- `5xx`: 500 then 503 on the first two attempts;
- `hang`: the first attempt is held past the client's timeout, then dropped without accepting;
- `late_accept`: the first attempt is held past the client's timeout and then accepted, as a slow
  SendGrid might: the sender never sees the 202, retries, and the customer gets the email twice;
- `drop_202` (planned only, never drawn): the first request that would be answered 202 is
  accepted and its connection closed without an answer, as a cut connection would.

The last two are the known window of a provider without idempotency (activities/emails.py).
`planned` faults are given per key and always fire, so every run exercises that window.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = {"429": 0.08, "5xx": 0.08, "hang": 0.02, "late_accept": 0.01}
# What became of the answer to a request whose message was accepted.
ANSWERED = "answered"  # the 202 was written to the client's socket
HELD_PAST_TIMEOUT = "held_past_client_timeout"  # accepted after the client had given up
DROPPED = "response_dropped"  # accepted, connection closed without an answer (planned)
ANSWER_FAILED = "answer_failed"  # writing the 202 failed: the client's socket was gone


@dataclass
class Accepted:
    """One message the provider took (the customer got it), and what its request was told.
    Times are wall-clock (`time.time()`), comparable with the database's and the faults'."""

    message_id: str
    requested_at: float
    at: float
    answer: str = ANSWERED

    @property
    def answered(self) -> bool:
        return self.answer == ANSWERED


@dataclass
class ProviderLog:
    accepted: dict[str, list[Accepted]] = field(default_factory=lambda: defaultdict(list))
    attempts: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: dict[str, str] = field(default_factory=dict)
    # Planned faults that fired, key → fault.
    fired: dict[str, str] = field(default_factory=dict)
    outage_503s: int = 0


class FaultySendGrid:
    def __init__(
        self,
        api_key: str,
        *,
        seed: int,
        client_timeout_s: float,
        faults: Mapping[str, float] = FAULTS,
        planned: Mapping[str, str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.seed = seed
        self.hold_s = client_timeout_s + 1.5
        self.fault_rates = dict(faults)
        self.planned = dict(planned or {})
        self.log = ProviderLog()
        self.outage: tuple[float, float] = (0.0, 0.0)
        self._lock = threading.Lock()

    def outage_for(self, start_in_s: float, length_s: float) -> None:
        now = time.time()
        self.outage = (now + start_in_s, now + start_in_s + length_s)

    def fault_for(self, key: str) -> str | None:
        if key in self.planned:
            return self.planned[key]
        draw = random.Random(f"{self.seed}:{key}").random()
        for name, rate in self.fault_rates.items():
            if draw < rate:
                return name
            draw -= rate
        return None

    def decide(self, key: str) -> tuple[int, str]:
        """(attempt number, what to do): 202, 401, 429, 500, 503, hang, late_accept, drop_202."""
        with self._lock:
            self.log.attempts[key] += 1
            attempt = self.log.attempts[key]
            fault = self.fault_for(key)
            if fault:
                self.log.faults[key] = fault
            start, end = self.outage
            if start <= time.time() < end:
                self.log.outage_503s += 1
                return attempt, "503"
            if fault == "429" and attempt == 1:
                return attempt, "429"
            if fault == "5xx" and attempt <= 2:
                return attempt, "500" if attempt == 1 else "503"
            if fault in ("hang", "late_accept") and attempt == 1:
                return attempt, fault
            if fault == "drop_202" and key not in self.log.fired:
                self.log.fired[key] = fault
                return attempt, fault
            return attempt, "202"

    def accept(self, key: str, requested_at: float, answer: str = ANSWERED) -> Accepted:
        copy = Accepted(f"fake-{uuid.uuid4().hex[:16]}", requested_at, time.time(), answer)
        with self._lock:
            self.log.accepted[key].append(copy)
            if answer == HELD_PAST_TIMEOUT and self.planned.get(key) == "late_accept":
                self.log.fired[key] = "late_accept"
        return copy

    def count(self, outcome: str) -> None:
        with self._lock:
            self.log.outcomes[outcome] += 1

    @contextmanager
    def serving(self) -> Iterator[str]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                requested_at = time.time()
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
                    copy = provider.accept(key, requested_at)
                    if not self._answer(202, None, {"X-Message-Id": copy.message_id}):
                        copy.answer = ANSWER_FAILED
                    return None
                if action == "drop_202":
                    provider.accept(key, requested_at, DROPPED)
                    self.close_connection = True
                    return None
                if action in ("hang", "late_accept"):
                    time.sleep(provider.hold_s)
                    if action == "late_accept":
                        provider.accept(key, requested_at, HELD_PAST_TIMEOUT)
                    self.close_connection = True
                    return None
                self._answer(int(action), {"errors": [{"message": f"fault {action}"}]})
                return None

            def _answer(
                self, status: int, body: object, headers: dict[str, str] | None = None
            ) -> bool:
                data = b"" if body is None else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True
                    return False  # the worker was killed while we answered
                return True

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
