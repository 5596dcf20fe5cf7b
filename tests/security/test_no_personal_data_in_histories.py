"""No personal data in any recorded history: histories are kept for years and replicated, while
a customer's emails and names must stay in the database, where they can be erased."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.histories.record import CUSTOMER_EMAIL, PERSONAL_DATA

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))
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


def personal_data_in(history: object) -> set[str]:
    found: set[str] = set()
    for text in decoded_text(history):
        found |= {value for value in PERSONAL_DATA if value.lower() in text.lower()}
        found |= {match.group(0) for match in EMAIL.finditer(text)}
    return found


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_no_personal_data_in_recorded_history(path: Path):
    assert personal_data_in(json.loads(path.read_text())) == set()


def test_the_scan_finds_personal_data_in_a_payload():
    payload = base64.b64encode(json.dumps({"email": CUSTOMER_EMAIL}).encode()).decode()
    history = {"events": [{"input": {"payloads": [{"metadata": {}, "data": payload}]}}]}
    assert personal_data_in(history) == {CUSTOMER_EMAIL}
