"""Reading everything a failing or passing run left behind (histories, descriptions, log
records) as plain text, so a test can prove no personal value is in it."""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Iterable, Iterator

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def decoded_text(node: object) -> Iterator[str]:
    """Every string of a history, with payloads decoded (they are stored base64-encoded, so a
    plain search of the file would find nothing)."""
    if isinstance(node, dict):
        if "data" in node and "metadata" in node and isinstance(node["data"], str):
            yield base64.b64decode(node["data"]).decode("utf-8", "replace")
        for value in node.values():
            yield from decoded_text(value)
    elif isinstance(node, list):
        for value in node:
            yield from decoded_text(value)
    elif isinstance(node, str):
        yield node


def found_in(texts: Iterable[str], personal: Iterable[str]) -> set[str]:
    """The personal values (in any case) and email-looking strings in `texts`."""
    values = [value.lower() for value in personal]
    found: set[str] = set()
    for text in texts:
        found |= {value for value in values if value in text.lower()}
        found |= {match.group(0) for match in EMAIL.finditer(text)}
    return found


def log_text(records: Iterable[logging.LogRecord]) -> Iterator[str]:
    """Each record as a handler would print it (with its traceback), and its raw parts: a
    filter or formatter elsewhere must not be what keeps a value out of sight."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in records:
        yield formatter.format(record)
        yield repr(vars(record))
