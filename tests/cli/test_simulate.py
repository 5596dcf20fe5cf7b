"""`loyalloop simulate`: the real workflow under its own time-skipping server, as a marketer or a
support agent runs it from the command line: a real process, whose whole stdout is the document
(`simulate … --json | jq .`), with the SDK's logs, if any, on stderr."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.shell import clean_environment, loyalloop

PURCHASE = {
    "shop_id": "acme",
    "order_id": "1001",
    "placed_at": "2026-11-20T10:00:00Z",
    "customer": {
        "id": "c-42",
        "email": "ana@example.com",
        "first_name": "Ana",
        "locale": "en",
        "timezone": "Europe/Lisbon",
        "marketing_consent": True,
    },
    "items": [
        {"sku": "KETTLE-1", "name": "Pour-over kettle", "quantity": 1, "unit_price": "49.00"}
    ],
    "total": "49.00",
    "currency": "EUR",
    "referral": {"code": "MAYA10"},
}
REPEAT = {
    **PURCHASE,
    "order_id": "1002",
    "items": [{"sku": "GRINDER-2", "name": "Burr grinder", "quantity": 1, "unit_price": "250.00"}],
    "total": "250.00",
}
CREATORS = [{"code": "MAYA10", "name": "Maya", "email": "maya@creators.example"}]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name, content in (
        ("purchase.json", PURCHASE),
        ("repeat.json", REPEAT),
        ("creators.json", CREATORS),
    ):
        (tmp_path / name).write_text(json.dumps(content))
    return tmp_path


def run_simulate(files: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_environment(DATABASE_URL=f"sqlite:///{files / 'app.db'}")
    return loyalloop("simulate", *args, cwd=files, env=env)


def simulate(files: Path, *args: str) -> dict[str, Any]:
    done = run_simulate(files, "purchase.json", "--creators", "creators.json", "--json", *args)
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)  # all of it, nothing before or after
    return document


def test_whole_journey_with_a_repeat_purchase(files: Path) -> None:
    timeline = simulate(files, "--event", "repeat:repeat.json@30")

    first = [
        (e["step"], e["day"], e["status"]) for e in timeline["emails"] if e["order_id"] == "1001"
    ]
    assert first == [
        ("day_1", 1, "sent"),
        ("day_7", 7, "sent"),
        ("referral_prompt", 8, "sent"),  # due with day_7, held by the frequency cap
        ("day_21", 21, "sent"),
    ]
    assert {e["local_time"][11:16] for e in timeline["emails"] if e["status"] == "sent"} == {
        "10:00"
    }
    assert timeline["emails"][0]["template"] == "day_1/sku/KETTLE-1"
    prompt = [
        e for e in timeline["emails"] if e["order_id"] == "1002" and e["step"] == "referral_prompt"
    ]
    assert [(e["status"], e["reason"]) for e in prompt] == [("skipped", "already_sent_to_customer")]
    credits = {
        (c["milestone"], c["referrer"], c["amount"], c["status"]) for c in timeline["credits"]
    }
    assert credits == {
        ("referral", "MAYA10", "5.00", "approved"),
        ("first_repeat_purchase", "MAYA10", "5.00", "approved"),
        ("spend:100", "MAYA10", "10.00", "approved"),
        ("spend:250", "MAYA10", "10.00", "approved"),
        ("tier:silver", "MAYA10", "15.00", "approved"),
    }
    assert {(lc["order_id"], lc["ended"]) for lc in timeline["lifecycles"]} == {
        ("1001", "completed"),
        ("1002", "completed"),
    }


def test_refund_on_day_3_stops_the_series_and_reverses_the_credit(files: Path) -> None:
    timeline = simulate(files, "--event", "refund:49.00@3")
    assert [(e["step"], e["status"]) for e in timeline["emails"]] == [("day_1", "sent")]
    assert [(c["milestone"], c["status"]) for c in timeline["credits"]] == [
        ("referral", "reversed")
    ]
    assert timeline["lifecycles"] == [{"order_id": "1001", "ended": "refunded"}]


def test_unsubscribe_on_day_5_skips_every_later_email(files: Path) -> None:
    timeline = simulate(files, "--event", "unsubscribe@5")
    assert [(e["step"], e["status"], e["reason"]) for e in timeline["emails"]] == [
        ("day_1", "sent", None),
        ("day_7", "skipped", "unsubscribed"),
        ("referral_prompt", "skipped", "unsubscribed"),
        ("day_21", "skipped", "unsubscribed"),
    ]


def test_config_file_changes_the_schedule_and_rewards(files: Path) -> None:
    (files / "rules.json").write_text(
        json.dumps(
            {
                "steps": [
                    {"step": "day_1", "day": 2},
                    {"step": "referral_prompt", "day": 3, "once_per": "customer"},
                ],
                "rewards": {
                    "referral": "7.50",
                    "first_repeat_purchase": "5",
                    "spend": "1",
                    "tier": "1",
                },
            }
        )
    )
    timeline = simulate(files, "--config", "rules.json")
    assert [(e["step"], e["day"]) for e in timeline["emails"]] == [
        ("day_1", 2),
        ("referral_prompt", 3),
    ]
    assert [(c["milestone"], c["amount"]) for c in timeline["credits"]] == [("referral", "7.50")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--event", "bogus@1"], "expected repeat:FILE.json@DAY"),
        (["--event", "refund:-3@1"], "is not a positive amount"),
        (["--event", "repeat:missing.json@3"], "missing.json"),
        (["--config", "missing-rules.json"], "--config missing-rules.json"),
    ],
)
def test_bad_arguments_get_one_line_and_a_non_zero_exit(
    files: Path, args: list[str], message: str
) -> None:
    done = run_simulate(files, "purchase.json", *args)
    assert done.returncode != 0
    assert done.stdout == ""
    assert message in done.stderr and "Traceback" not in done.stderr


def test_a_bad_purchase_file_names_the_field(files: Path) -> None:
    (files / "bad.json").write_text(json.dumps({**PURCHASE, "total": 49.0}))
    done = run_simulate(files, "bad.json", "--json")
    assert done.returncode != 0 and done.stdout == ""
    assert "total" in done.stderr and "float" in done.stderr
