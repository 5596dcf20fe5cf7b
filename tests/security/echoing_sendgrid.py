"""A stand-in for SendGrid that refuses some steps with an error body echoing the recipient's
address and name back, as real providers' validation messages sometimes do."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class EchoingSendGrid:
    """`refuse`: step → (status, times): that step's first `times` requests get `status`."""

    def __init__(self, refuse: dict[str, tuple[int, int]]) -> None:
        self.refuse = refuse
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def answer(self, body: dict[str, Any]) -> tuple[int, bytes]:
        step = next(c for c in body.get("categories", []) if not c.startswith("shop:"))
        [recipient] = body["personalizations"][0]["to"]
        with self._lock:
            self.requests[step] += 1
            attempt = self.requests[step]
        status, times = self.refuse.get(step, (202, 0))
        if attempt > times:
            return 202, b""
        echo = f"{recipient['email'].lower()} ({recipient.get('name')}) is not reachable"
        return status, json.dumps({"errors": [{"message": echo, "field": "to"}]}).encode()

    @contextmanager
    def serving(self) -> Iterator[str]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                status, reply = provider.answer(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
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
