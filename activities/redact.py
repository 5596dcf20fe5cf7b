"""Scrubbing a purchase's personal values out of error text before it is stored or raised.

Template errors quote the values they stumbled on (`'list object' has no attribute 'Ana'`) and
providers echo the recipient in their error bodies; both end up in `email_send.last_error` and
in the activity's failure, which the lifecycle's history keeps forever. The values are known at
the failure (the purchase's row), so they are replaced wherever they appear, in any case and as
HTML or JSON would write them, and so is anything that looks like an email address.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable

REDACTED = "[redacted]"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Shorter pieces of a value are only replaced as whole words: "Al" must not mangle "invalid".
WHOLE_WORD_BELOW = 3


class Redactor:
    def __init__(self, values: Iterable[str | None]) -> None:
        pieces = {piece for value in values if value for piece in _pieces(value)}
        patterns = [_pattern(p) for p in sorted(pieces, key=len, reverse=True)]
        self._values = re.compile("|".join(patterns), re.IGNORECASE) if patterns else None

    def __call__(self, text: str) -> str:
        text = EMAIL.sub(REDACTED, text)
        return self._values.sub(REDACTED, text) if self._values else text


def _pieces(value: str) -> set[str]:
    """The value, its words and an address's local part, each as written, HTML-escaped and
    JSON-escaped."""
    value = value.strip()
    found = {value, *value.split()}
    if "@" in value:
        found.add(value.rsplit("@", 1)[0])
    escaped = {form for piece in found for form in (html.escape(piece), json.dumps(piece)[1:-1])}
    return {piece for piece in found | escaped if piece}


def _pattern(piece: str) -> str:
    escaped = re.escape(piece)
    return escaped if len(piece) >= WHOLE_WORD_BELOW else rf"(?<!\w){escaped}(?!\w)"
