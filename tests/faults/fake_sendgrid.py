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

The last two are the window of a provider without idempotency (activities/emails.py): the
app never hears the 202. As SendGrid does, the provider then tells the app through its Signed
Event Webhook: every accepted copy gets a `processed` and a `delivered` event, with the custom
args the request carried, posted in signed batches to the intake (`deliver_events_to`), and a
batch that is not answered 2xx is posted again until it is (SendGrid retries for 24 hours).
`planned` faults are given per key and always fire, so every run exercises that window.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tests.webhooks.conftest import sign

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
class EventLog:
    """What the Event Webhook feed did: events posted and answered 2xx, batches posted again
    after an error (the intake down or its database cut), and every 4xx answer (a batch the
    intake refused, which SendGrid would drop: a fault of the app, reported by the verdict)."""

    delivered: int = 0
    batches: int = 0
    retried: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    undelivered: int = 0


@dataclass
class ProviderLog:
    accepted: dict[str, list[Accepted]] = field(default_factory=lambda: defaultdict(list))
    attempts: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: dict[str, str] = field(default_factory=dict)
    # Planned faults that fired, key → fault.
    fired: dict[str, str] = field(default_factory=dict)
    outage_503s: int = 0
    events: EventLog = field(default_factory=EventLog)


class EventFeed:
    """SendGrid's Event Webhook: events queued as copies are accepted, posted every half
    second in one signed batch, and a batch not answered 2xx posted again a second later."""

    def __init__(self, url: str, private: ec.EllipticCurvePrivateKey, log: EventLog) -> None:
        self.url = url
        self.private = private
        self.log = log
        self.pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def add(self, copy: Accepted, args: dict[str, str], to_email: str) -> None:
        when = int(copy.at)
        with self._lock:
            self.pending += [
                {"email": to_email, "timestamp": when, "event": kind,
                 "sg_event_id": f"fault-{uuid.uuid4().hex}",
                 "sg_message_id": f"{copy.message_id}.filter0001.{n}.0", **args}
                for n, kind in enumerate(("processed", "delivered"))
            ]

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                batch, self.pending = self.pending, []
            if batch and not self._post(batch):
                with self._lock:
                    self.pending = batch + self.pending
                self._stop.wait(1.0)

    def _post(self, batch: list[dict[str, Any]]) -> bool:
        body = json.dumps(batch).encode()
        headers = sign(self.private, body, str(int(time.time())))
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        self.log.batches += 1
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                answer.read()
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500:
                self.log.refused.append(f"{error.code}: {error.read()[:300]!r}")
                return True  # SendGrid does not post a refused batch again
            self.log.retried[str(error.code)] += 1
            return False
        except OSError as error:
            self.log.retried[type(error).__name__] += 1
            return False
        self.log.delivered += len(batch)
        return True

    def close(self, drain_s: float = 30.0) -> None:
        """Wait for what is queued to be delivered, then stop; what is left is counted."""
        deadline = time.monotonic() + drain_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self.pending:
                    break
            time.sleep(0.2)
        self._stop.set()
        self._thread.join()
        self.log.undelivered = len(self.pending)


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
        self._outage_plan: tuple[float, float] | None = None
        self.feed: EventFeed | None = None
        self._lock = threading.Lock()

    def deliver_events_to(self, url: str, private: ec.EllipticCurvePrivateKey) -> EventFeed:
        self.feed = EventFeed(url, private, self.log.events)
        return self.feed

    def outage_for(self, start_in_s: float, length_s: float) -> None:
        """An outage of `length_s` that begins with the first request at least `start_in_s`
        from now: on a loaded machine the worker may be slow to start sending, and an outage
        that falls between requests tests nothing."""
        self._outage_plan = (time.time() + start_in_s, length_s)

    def _in_outage(self, now: float) -> bool:
        if self._outage_plan is not None and now >= self._outage_plan[0]:
            self.outage = (now, now + self._outage_plan[1])
            self._outage_plan = None
        start, end = self.outage
        return start <= now < end

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
            if self._in_outage(time.time()):
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

    def accept(
        self, key: str, requested_at: float, body: dict[str, Any], answer: str = ANSWERED
    ) -> Accepted:
        copy = Accepted(f"fake-{uuid.uuid4().hex[:16]}", requested_at, time.time(), answer)
        with self._lock:
            self.log.accepted[key].append(copy)
            if answer == HELD_PAST_TIMEOUT and self.planned.get(key) == "late_accept":
                self.log.fired[key] = "late_accept"
        if self.feed is not None:
            personalization = body["personalizations"][0]
            self.feed.add(copy, personalization["custom_args"], personalization["to"][0]["email"])
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
                    copy = provider.accept(key, requested_at, body)
                    if not self._answer(202, None, {"X-Message-Id": copy.message_id}):
                        copy.answer = ANSWER_FAILED
                    return None
                if action == "drop_202":
                    provider.accept(key, requested_at, body, DROPPED)
                    self.close_connection = True
                    return None
                if action in ("hang", "late_accept"):
                    time.sleep(provider.hold_s)
                    if action == "late_accept":
                        provider.accept(key, requested_at, body, HELD_PAST_TIMEOUT)
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
