"""Marketers edit templates under running workers: a broken template holds its email (the send
retries with backoff, the lifecycle shows what it waits on, the error names file and line),
the fix sends it once, and every edit reaches the next send without a restart."""

from __future__ import annotations

from pathlib import Path

from messages.render import TemplateRenderer
from messages.samples import SAMPLES, LinkSigning, purchase_context
from tests.lifecycle_kit import LifecycleKit
from tests.templates.files import edit, replace
from workflows.lifecycle import PurchaseLifecycle

KETTLE_DAY_1 = "day_1/sku/KETTLE-1"


def _version(root: Path, variant: str) -> str:
    renderer = TemplateRenderer(root)
    context = purchase_context(renderer, variant.split("/")[0], SAMPLES["ana-en-kettle-creator"],
                               LinkSigning("https://loyalloop.example", "secret"))
    return renderer.render_variant(variant, context).template_hash


async def test_broken_template_holds_the_email_until_fixed(kit: LifecycleKit, templates_copy: Path):
    shipped = _version(templates_copy, KETTLE_DAY_1)
    good = (templates_copy / KETTLE_DAY_1 / "body.html").read_text()
    replace(templates_copy, f"{KETTLE_DAY_1}/body.html", "Three steps", "{{ kettle.steps }} steps")

    handle = await kit.buy(await kit.placed_now("tpl-1"))  # a KETTLE-1: the product override
    await kit.skip(2)

    status = await handle.query(PurchaseLifecycle.status)
    assert status.waiting_on == "day_1" and status.steps_done == {}
    [email] = kit.emails(handle.id)
    assert (email.step, email.status, email.template_hash) == ("day_1", "failing", None)
    assert email.attempts >= 5  # retried with backoff, not given up
    assert email.last_error == (f"template: {KETTLE_DAY_1}/body.html:4: "
                                "UndefinedError: 'kettle' is undefined")
    assert kit.outbox(handle.id) == []
    pending = (await handle.describe()).raw_description.pending_activities
    assert [p.activity_type.name for p in pending] == ["send_step"]
    assert "'kettle' is undefined" in pending[0].last_failure.message
    assert pending[0].last_failure.application_failure_info.type == "TemplateError"

    # The fix, with new words; and, before day 7, a new day_7 subject. No worker restarts.
    edit(templates_copy, f"{KETTLE_DAY_1}/body.html", good.replace("Three steps", "Four steps"))
    replace(templates_copy, "day_7/subject.txt", "How is it going", "Checking in")
    fixed = _version(templates_copy, KETTLE_DAY_1)
    assert fixed != shipped

    summary = await handle.result()
    assert summary.emails_sent == 4 and summary.emails_failed == 0
    emails = {e.step: e for e in kit.emails(handle.id)}
    day_1 = emails["day_1"]
    assert (day_1.status, day_1.template_name, day_1.template_hash) == ("sent", KETTLE_DAY_1, fixed)
    assert day_1.last_error is None and day_1.attempts == email.attempts + 1
    sent = {m.subject: m for m in kit.outbox(handle.id)}
    assert len(sent) == 4
    [day_1_message] = [m for m in sent.values() if m.subject == day_1.subject]
    assert "Four steps to a great first cup" in (day_1_message.html or "")
    assert "kettle.steps" not in (day_1_message.html or "")
    assert emails["day_7"].subject == "Checking in with your Item KETTLE-1, Ana?"
    assert emails["day_7"].template_hash == _version(templates_copy, "day_7")
