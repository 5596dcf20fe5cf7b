"""A wrong LOYALLOOP_RULES_FILE is one line naming the file and what is wrong, from every command
that reads it, never a traceback; the worker and the intake refuse to start on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LOYALLOOP = Path(sys.executable).parent / "loyalloop"
PURCHASE = {
    "shop_id": "acme", "order_id": "1001", "placed_at": "2026-11-20T10:00:00Z",
    "customer": {"id": "c-42", "email": "ana@example.com", "first_name": "Ana", "locale": "en",
                 "timezone": "Europe/Lisbon", "marketing_consent": True},
    "items": [{"sku": "KETTLE-1", "name": "Kettle", "quantity": 1, "unit_price": "49.00"}],
    "total": "49.00", "currency": "EUR",
}
BROKEN = {
    "not JSON": ('{"steps": 3', "not valid JSON (Expecting ',' delimiter at line 1 column 12)"),
    "an array": ("[1, 2]", "must be a JSON object of rules"),
    "an unknown rule": ('{"hold_dayz": 3}', "unknown rule(s): hold_dayz; known: "),
    "a bad value": ('{"send_hour": 25}', "send_hour must be between 0 and 23"),
    "missing": (None, "No such file or directory"),
}


def run(tmp_path: Path, rules: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "rules.json"
    if rules is not None:
        path.write_text(rules)
    (tmp_path / "purchase.json").write_text(json.dumps(PURCHASE))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALLOOP_", "TEMPORAL_"))}
    env |= {"LOYALLOOP_RULES_FILE": str(path), "TEMPORAL_ADDRESS": "127.0.0.1:1",
            "DATABASE_URL": f"sqlite:///{tmp_path}/app.db",
            "LOYALLOOP_LINK_SECRET": "a-real-link-secret-for-tests",
            "LOYALLOOP_SHOP_KEYS": "acme:a-shop-key-of-20-chars"}
    return subprocess.run([str(LOYALLOOP), *args], env=env, capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)


@pytest.mark.parametrize(("broken", "args"), [
    *((broken, ["purchase", "purchase.json"]) for broken in sorted(BROKEN)),
    ("not JSON", ["api", "--port", "0"]),
    ("an unknown rule", ["worker"]),
])
def test_a_wrong_rules_file_is_one_line_naming_it(tmp_path: Path, broken: str, args: list[str]):
    rules, problem = BROKEN[broken]
    done = run(tmp_path, rules, *args)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: configuration: LOYALLOOP_RULES_FILE {tmp_path}/rules.json: "
                           f"{problem}"), line
