"""Printing text that came from shops, customers or people (names, subjects, bodies, reasons,
item names, addresses, error texts) on a support person's terminal.

Such text can hold what a terminal obeys instead of showing: ESC and CSI sequences (colours,
clearing the screen, OSC-8 hyperlinks whose target differs from the words shown, window titles),
BEL, carriage return and backspace (overwriting what was printed), 8-bit C1 controls, and bidi
overrides that reorder a line (`\u202e` makes `gnp.exe` read `exe.png`). Every command prints
through these helpers, so each such character is shown escaped (`\\x1b`, `\\u202e`) instead.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import click

_UNSAFE = [
    *range(0x00, 0x20), 0x7F, *range(0x80, 0xA0),  # C0, DEL, C1 (0x9b is a CSI on its own)
    0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A),  # bidi marks
    0x2028, 0x2029,  # line and paragraph separators
]


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_LINE = {code: _escape(code) for code in _UNSAFE}
_TEXT = {code: text for code, text in _LINE.items() if chr(code) not in "\n\t"}


def safe(value: object) -> str:
    """One line: every unsafe character escaped, newlines and tabs too."""
    return str(value).translate(_LINE)


def safe_text(value: object) -> str:
    """A text that may have lines (an email's text part): newlines and tabs kept."""
    return str(value).replace("\r\n", "\n").translate(_TEXT)


def escaped(value: Any) -> Any:
    """A record with every text in it made `safe`, for tables built from its fields."""
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, list | tuple):
        return [escaped(item) for item in value]
    if isinstance(value, dict):
        return {escaped(key): escaped(item) for key, item in value.items()}
    return value


def json_text(value: Any) -> str:
    """JSON for scripts: json.dumps escapes every control and non-ASCII character but DEL.
    Times are ISO 8601, as everywhere else in a record."""
    return json.dumps(value, indent=2, default=_plain).replace("\x7f", "\\u007f")


def _plain(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime | date) else str(value)


def echo(line: object = "", **kwargs: Any) -> None:
    click.echo(safe(line), **kwargs)


def echo_text(text: object, **kwargs: Any) -> None:
    click.echo(safe_text(text), **kwargs)
