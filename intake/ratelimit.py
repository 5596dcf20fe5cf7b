"""Failed authentication, limited per client address, so shop keys and Shopify signatures
cannot be found by trying.

Every `401` the intake answers (a wrong Bearer key, a wrong webhook signature) counts against
the caller's address. After `MAX_FAILURES` within `WINDOW_S`, the address is answered `429`
with `Retry-After` until its window ends, whatever it sends, a right key included: a right
guess answered otherwise would tell the guesser it was right. Successful calls are never
counted, and they do not clear the count either, or one shop's own key would buy unlimited
guesses at another shop's.

The count lives in this process (each intake replica keeps its own) and covers at most
`MAX_ADDRESSES` addresses, the least recently failing forgotten first, so memory stays
bounded however many addresses an attacker sprays from. The address is the TCP peer's:
`X-Forwarded-For` is not trusted, since any caller can write it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from intake.errors import EventRejected
from intake.limits import refuse

MAX_FAILURES = 10
WINDOW_S = 60.0
MAX_ADDRESSES = 10_000


class FailureWindows:
    """Failures per address in fixed windows that open at an address's first failure."""

    def __init__(
        self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
        max_addresses: int = MAX_ADDRESSES, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_addresses = max_addresses
        self.clock = clock
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()  # opened, failures

    def __len__(self) -> int:
        return len(self._windows)

    def retry_after(self, address: str) -> float | None:
        """Seconds until this address may try again, or None if it may now."""
        window = self._current(address)
        if window is None or window[1] < self.max_failures:
            return None
        return window[0] + self.window_s - self.clock()

    def failed(self, address: str) -> None:
        window = self._current(address)
        opened, failures = window if window is not None else (self.clock(), 0)
        self._windows[address] = (opened, failures + 1)
        self._windows.move_to_end(address)
        while len(self._windows) > self.max_addresses:
            self._windows.popitem(last=False)

    def _current(self, address: str) -> tuple[float, int] | None:
        window = self._windows.get(address)
        if window is not None and self.clock() - window[0] >= self.window_s:
            del self._windows[address]
            return None
        return window


class AuthFailureLimit:
    """ASGI middleware: refuses an address over its limit before the app (or its body) is
    read, and counts every `401` the app answers."""

    def __init__(self, app: ASGIApp, windows: FailureWindows | None = None) -> None:
        self.app = app
        self.windows = windows or FailureWindows()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "unknown"
        wait = self.windows.retry_after(address)
        if wait is not None:
            await refuse(send, too_many(self.windows, math.ceil(wait)))
            return

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                self.windows.failed(address)
            await send(message)

        await self.app(scope, receive, counted)


def too_many(windows: FailureWindows, seconds: int) -> EventRejected:
    problem = (f"{windows.max_failures} failed authentications from this address within "
               f"{windows.window_s:.0f} s: retry after {seconds} s")
    return EventRejected(429, "client", problem, headers={"Retry-After": str(max(seconds, 1))})
