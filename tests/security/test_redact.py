"""The scrubbing of personal values out of error text, case by case (the lifecycle tests in
test_no_personal_data_in_failures.py show it applied where errors are stored and raised)."""

from __future__ import annotations

from activities.redact import REDACTED, Redactor

redact = Redactor(["Zephyrine Ñúñez", "Zephyrine.Q@Example.com", None, "Al"])


def test_values_go_in_any_case_whole_or_in_words():
    assert redact("no attribute 'ZEPHYRINE'") == f"no attribute '{REDACTED}'"
    assert redact("dear ñúñez,") == f"dear {REDACTED},"
    assert redact("zephyrine.q bounced") == f"{REDACTED} bounced"


def test_values_go_as_html_and_json_write_them():
    assert "00f1" not in redact('{"name": "\\u00d1\\u00fa\\u00f1ez"}')
    assert "Zephyrine" not in Redactor(["O'Zephyrine"])("<p>O&#x27;Zephyrine</p>")


def test_any_address_goes():
    assert redact("to someone.else@example.org: refused") == f"to {REDACTED}: refused"


def test_short_values_only_as_whole_words():
    assert redact("Al: invalid value") == f"{REDACTED}: invalid value"


def test_the_rest_of_the_message_stays():
    problem = "day_1/body.txt:2: UndefinedError: 'list object' has no attribute '{}'"
    assert redact(problem.format("Zephyrine")) == problem.format(REDACTED)
