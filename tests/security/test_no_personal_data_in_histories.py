"""No personal data in any recorded history: histories are kept for years and replicated, while
a customer's emails and names must stay in the database, where they can be erased."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.histories.record import CUSTOMER_EMAIL, PERSONAL_DATA
from tests.security.scan import decoded_text, found_in

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
RECORDED = sorted(HISTORIES.glob("*.json"))


def personal_data_in(history: object) -> set[str]:
    return found_in(decoded_text(history), PERSONAL_DATA)


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_no_personal_data_in_recorded_history(path: Path):
    assert personal_data_in(json.loads(path.read_text())) == set()


def test_the_scan_finds_personal_data_in_a_payload():
    payload = base64.b64encode(json.dumps({"email": CUSTOMER_EMAIL}).encode()).decode()
    history = {"events": [{"input": {"payloads": [{"metadata": {}, "data": payload}]}}]}
    assert personal_data_in(history) == {CUSTOMER_EMAIL}
