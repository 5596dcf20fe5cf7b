"""Template files as they are on disk now, read again only when they change.

Every send renders at send time so a marketer's edit reaches the next send; reading and hashing
every part, partial and data file on each send was a third of the email step's CPU. A file is
re-read when its modification time or size differs from the copy held, so an edit is still seen
by the next send, and each send still costs one `stat` per file. As git does with its index, a
copy read within a second of the file's last change is not trusted: file times are coarse, and an
edit of the same size landing in the same tick as the read would otherwise go unseen.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

# A copy is trusted once the file had not changed for this long when it was read.
SETTLED_NS = 1_000_000_000


@dataclass(frozen=True)
class _Copy:
    stamp: tuple[int, int]
    settled: bool
    content: bytes
    digest: bytes
    parsed: Any = None


class FileCache:
    """Safe to share between activity threads: a race only reads a file twice."""

    def __init__(self) -> None:
        self._copies: dict[str, _Copy] = {}

    def _copy(self, path: str) -> _Copy:
        """Raises OSError when the file is not there."""
        now = time.time_ns()
        info = os.stat(path)
        stamp = (info.st_mtime_ns, info.st_size)
        held = self._copies.get(path)
        if held is not None and held.stamp == stamp and held.settled:
            return held
        with open(path, "rb") as file:
            content = file.read()
        settled = info.st_mtime_ns < now - SETTLED_NS
        copy = _Copy(stamp, settled, content, hashlib.sha256(content).digest())
        self._copies[path] = copy
        return copy

    def read(self, path: str) -> bytes:
        return self._copy(path).content

    def digest(self, path: str) -> bytes:
        """SHA-256 of the file's content."""
        return self._copy(path).digest

    def json(self, path: str) -> Any:
        """The file parsed as JSON (the same object while the file is unchanged: do not mutate
        it). Raises json.JSONDecodeError or UnicodeDecodeError for a broken file."""
        copy = self._copy(path)
        if copy.parsed is None:
            parsed = json.loads(copy.content.decode("utf-8"))
            copy = _Copy(copy.stamp, copy.settled, copy.content, copy.digest, parsed)
            self._copies[path] = copy
        return copy.parsed
