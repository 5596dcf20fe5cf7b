"""Untrusted text reaches a support person's terminal escaped, never raw.

Rows holding terminal sequences (an OSC-8 hyperlink, a CSI clear-screen, BEL, carriage return,
backspace, an 8-bit CSI, bidi overrides, DEL) are written straight into the database, as older
rows or another path could hold them (the intake refuses them now); then the real commands run
through click's CliRunner with colour on, so click itself strips nothing, as on a terminal."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from cli.main import main
from database.models import (
    AuditEntry,
    Creator,
    Credit,
    Customer,
    EmailSend,
    OutboxMessage,
    Purchase,
    Refund,
)
from settings import get_settings

ESC = "\x1b"
EVIL = (f"Ana{ESC}]8;;https://evil.example/{ESC}\\pay here{ESC}]8;;{ESC}\\\x07\r\b\t"
        f"\x9b2J\u202egnp.exe\u2066\x7f{ESC}[31m")
# every raw control a terminal acts on; \n is allowed (our own lines), \t only where asked
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
FORMULA = '=HYPERLINK("http://evil.example","x")'

Loyalloop = Callable[..., Awaitable[Result]]


def assert_safe(text: str, *, tabs: bool = False) -> None:
    assert RAW.findall(text) == []
    assert tabs or "\t" not in text
    assert "\\x1b]8;;https://evil.example/" in text and "\\u202e" in text


class Seeded:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.shop = f"shop-{uuid.uuid4().hex[:8]}"
        self.email = f"evil-{uuid.uuid4().hex[:8]}@example.com"
        self.creator = f"EV{uuid.uuid4().hex[:6].upper()}"
        now = datetime.now(UTC)
        workflow_id = f"purchase-{self.shop}-o1"
        with sessions.begin() as session:
            customer = Customer(shop_id=self.shop, customer_id="c-1", email=f"{EVIL}@x.example",
                                email_normalized=self.email, first_name=EVIL)
            session.add(customer)
            session.flush()
            session.add(Purchase(
                shop_id=self.shop, order_id="o1", customer_pk=customer.id, placed_at=now,
                total=Decimal("49.00"), currency="EUR", workflow_id=workflow_id,
                items=[{"sku": "S", "name": EVIL, "quantity": 1, "unit_price": "49.00"}],
                attribution="creator", referrer_code=f"M{ESC}]8;;https://evil.example/{ESC}\\X",
            ))
            send = EmailSend(
                idempotency_key=f"{workflow_id}:day_1", workflow_id=workflow_id,
                shop_id=self.shop, order_id="o1", customer_id="c-1", step="day_1",
                status="failing", subject=EVIL, last_error=EVIL, template_name="day_1",
            )
            session.add(send)
            session.flush()
            outbox = OutboxMessage(email_send_id=send.id, to_email=EVIL, from_email="shop@x",
                                   subject=EVIL, html=EVIL,
                                   text=f"Hello {EVIL}\nsecond line\r\nthird line")
            session.add(outbox)
            session.add(Creator(code=self.creator, name=EVIL, email=f"{EVIL}@x.example"))
            session.add(Refund(shop_id=self.shop, order_id="o1", refund_key=uuid.uuid4().hex,
                               amount=Decimal("1.00"), reason=EVIL))
            session.add(AuditEntry(actor=EVIL, action="resend", shop_id=self.shop,
                                   order_id="o1", reason=EVIL, detail={"note": EVIL}))
            for milestone, amount, batch in (
                (EVIL, Decimal("5.00"), "=cmd|' /C calc'!A0"),
                ("clawback:referral", Decimal("-5.00"), None),
            ):
                session.add(Credit(
                    shop_id=self.shop, referrer_kind="creator", referrer_code=FORMULA,
                    customer_id="c-1", order_id="o1", workflow_id=workflow_id,
                    milestone=milestone, amount=amount, currency="EUR", status="approved",
                    approve_after=now, payout_batch=batch,
                ))
            session.flush()
            self.outbox_id = outbox.id


@pytest.fixture
def seeded(sessions: sessionmaker[Session]) -> Seeded:
    return Seeded(sessions)


@pytest.fixture
def loyalloop(sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> Loyalloop:
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)

    async def invoke(*args: str) -> Result:
        get_settings.cache_clear()
        try:
            result = await asyncio.to_thread(CliRunner().invoke, main, list(args), color=True)
        finally:
            get_settings.cache_clear()
        assert result.exit_code == 0, result.output
        return result

    return invoke


async def test_outbox_list_and_show(seeded: Seeded, loyalloop: Loyalloop):
    listed = await loyalloop("outbox", "--limit", "200")
    shown = await loyalloop("outbox", "--show", str(seeded.outbox_id))

    assert_safe(listed.output)
    assert_safe(shown.output, tabs=True)
    # the text part keeps its lines and tabs; a name cannot add a header line of its own
    header, _, text = shown.output.partition("\n\n")
    assert "second line\nthird line" in text and "\t" in text
    assert [line.split(":")[0] for line in header.splitlines()] == [
        "From", "To", "Subject", "Lifecycle", "Template", "SendGrid",
    ]
    assert "\t" not in header


async def test_inspect_and_find(
    env: WorkflowEnvironment, seeded: Seeded, loyalloop: Loyalloop,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("TEMPORAL_ADDRESS", env.client.service_client.config.target_host)
    timeline = await loyalloop("inspect", seeded.shop, "o1")
    as_json = await loyalloop("inspect", seeded.shop, "o1", "--json")
    found = await loyalloop("find", "--email", seeded.email)
    found_json = await loyalloop("find", "--email", seeded.email, "--json")

    assert_safe(timeline.output)
    assert RAW.findall(as_json.output) == []
    record = json.loads(as_json.output)
    assert record["audit"][0]["reason"] == record["refunds"][0]["reason"] == EVIL
    assert RAW.findall(found.output) == [] and "\\x1b]8;;https://evil.example/" in found.output
    assert RAW.findall(found_json.output) == []
    assert json.loads(found_json.output)[0]["order_id"] == "o1"


async def test_credits_as_table_json_csv_and_summary(seeded: Seeded, loyalloop: Loyalloop):
    table = await loyalloop("credits", "--shop", seeded.shop)
    as_json = await loyalloop("credits", "--shop", seeded.shop, "--format", "json")
    as_csv = await loyalloop("credits", "--shop", seeded.shop, "--format", "csv")
    summary = await loyalloop("credits", "summary", "--creator", FORMULA)

    assert_safe(table.output)
    assert_safe(summary.output)
    assert RAW.findall(as_json.output) == []
    assert json.loads(as_json.output)[0]["milestone"] == EVIL
    assert RAW.findall(as_csv.output) == []
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    # a spreadsheet shows these as text instead of running them; a negative amount stays a number
    assert [(r["referrer_code"], r["payout_batch"], r["amount"]) for r in rows] == [
        ("'" + FORMULA, "'=cmd|' /C calc'!A0", "5.00"), ("'" + FORMULA, "", "-5.00"),
    ]


async def test_creators_list_keeps_one_line_and_three_columns_per_creator(
    seeded: Seeded, loyalloop: Loyalloop
):
    listed = await loyalloop("creators", "list")

    assert_safe(listed.output, tabs=True)
    [line] = [line for line in listed.output.splitlines() if line.startswith(seeded.creator)]
    assert line.count("\t") == 2


async def test_creators_add_refuses_control_characters(sessions, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", sessions.kw["bind"].url.render_as_string(False))
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["creators", "add", f"EV{uuid.uuid4().hex[:6]}",
                                       "--name", EVIL, "--email", "a@b.example"])
    get_settings.cache_clear()
    assert result.exit_code == 2 and "no control or bidi characters" in result.output


def test_an_error_line_quoting_a_file_name_is_escaped(tmp_path):  # type: ignore[no-untyped-def]
    """`fail()` quotes what it was given (a path, an id, a driver's text): escaped too."""
    named = str(tmp_path / f"order{ESC}]8;;https://evil.example/{ESC}\\.json")
    result = CliRunner().invoke(main, ["purchase", named], color=True)
    assert result.exit_code == 2
    assert RAW.findall(result.output) == [] and "order\\x1b]8;;https:" in result.output
