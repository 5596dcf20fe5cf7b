"""A load generator light enough to share two cores with what it measures.

httpx spent 4.7 ms of CPU per request here, several times what the intake itself spends, and on
one machine that CPU comes out of the intake's and the Temporal server's share. This client keeps
one HTTP/1.1 keep-alive connection per caller, writes pre-encoded requests and reads only the
status line, Content-Length and body: the intake answers every request with a sized JSON body.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


class Connection:
    """One keep-alive connection to `base_url`, sending requests one at a time."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None or url.port is None:
            raise ValueError(f"need http://host:port, got {base_url!r}")
        self.host, self.port = url.hostname, url.port
        self.head = "".join(f"{name}: {value}\r\n" for name, value in
                            ({"Host": url.netloc} | headers).items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.writer is not None:
            self.writer.close()

    async def post_json(self, path: str, body: object) -> Response:
        payload = json.dumps(body).encode()
        return await self.send(
            f"POST {path} HTTP/1.1\r\n{self.head}Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        )

    async def send(self, request: bytes) -> Response:
        assert self.reader is not None and self.writer is not None, "use `async with`"
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        length = next((int(line.split(":", 1)[1]) for line in lines
                       if line.lower().startswith("content-length:")), None)
        if length is None:
            raise RuntimeError(f"response without Content-Length: {status_line}")
        return Response(int(status_line.split(" ", 2)[1]), await self.reader.readexactly(length))
