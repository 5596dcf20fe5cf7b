"""No data the intake accepts may make a step fail: a long name shortens the subject cleanly,
and the longest, most escaping purchase renders every step and override within the sandbox's
bounds, in a check and through a real lifecycle."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from pydantic import ValidationError

from messages import sandbox
from messages.check import _split
from messages.render import ELLIPSIS, MAX_SUBJECT_CHARS, TemplateRenderer, shorten
from messages.samples import SAMPLES, LinkSigning, purchase_context, with_sku_first, worst_case
from shop_events.schemas import PurchaseEvent
from tests.lifecycle_kit import LifecycleKit
from tests.templates.files import edit

WORST = "worst-case-longest-everything"
SIGNING = LinkSigning("https://loyalloop.example", "secret")


def test_a_long_name_and_product_shorten_the_subject_at_a_word(templates_copy: Path):
    """The issue's case: both within the intake's limits, together past 300 characters."""
    data = SAMPLES["ana-en-kettle-creator"].model_dump(mode="json")
    data["customer"]["first_name"] = "Ana" * 50
    data["items"][0]["name"] = "Pour-over kettle " * 11 + "in brushed steel"
    purchase = PurchaseEvent.model_validate(data)
    renderer = TemplateRenderer(templates_copy)
    subject = renderer.render_variant(
        "day_1", purchase_context(renderer, "day_1", purchase, SIGNING)).subject
    assert len(subject) <= MAX_SUBJECT_CHARS
    assert subject.startswith("Ana" * 50 + ", let's get your Pour-over kettle")
    assert subject.endswith(f"kettle{ELLIPSIS}") or subject.endswith(f"Pour-over{ELLIPSIS}")


@pytest.mark.parametrize(("text", "expected"), [
    ("short enough", "short enough"),
    ("word " * 10, "word word word word…"),
    ("x" * 30, "x" * 19 + "…"),
    ("x" * 18 + "e\u0301" + "x" * 10, "x" * 18 + "…"),  # not the letter without its accent
    ("x" * 17 + "\U0001f469\u200d\U0001f4bb" + "x" * 10, "x" * 17 + "…"),  # one emoji
    ("x" * 18 + "\U0001f44d\U0001f3fd" + "x" * 10, "x" * 18 + "…"),  # with its skin tone
    ("x" * 18 + "\U0001f1f5\U0001f1f9" + "x" * 10, "x" * 18 + "…"),  # a flag
    ("a, b, c, d, e, fffffffffff", "a, b, c, d, e…"),
])
def test_shorten_cuts_between_words_or_whole_characters(text: str, expected: str):
    assert shorten(text, 20) == expected
    assert len(shorten(text, 20)) <= 20


def test_the_worst_case_is_at_every_limit_of_the_intake():
    """One more character or item anywhere is refused, so the sample stays the worst."""
    data = worst_case().model_dump(mode="json")
    for grow in (
        lambda d: d["customer"].update(first_name=d["customer"]["first_name"] + "x"),
        lambda d: d["items"][0].update(name=d["items"][0]["name"] + "x"),
        lambda d: d["items"][0].update(sku=d["items"][0]["sku"] + "x" * 121),
        lambda d: d["items"].append(d["items"][0]),
        lambda d: d.update(order_id=d["order_id"] + "x"),
        lambda d: d["referral"].update(code=d["referral"]["code"] + "x"),
    ):
        grown = json.loads(json.dumps(data))
        grow(grown)
        with pytest.raises(ValidationError):
            PurchaseEvent.model_validate(grown)
    assert max(len(item["sku"]) for item in data["items"]) == 128


def test_every_step_and_override_renders_the_worst_case(templates_copy: Path):
    renderer = TemplateRenderer(templates_copy)
    purchase = SAMPLES[WORST]
    rendered = 0
    for step in renderer.steps():
        for variant in renderer.variants(step):
            _, sku, locale = _split(variant)
            sample = with_sku_first(purchase, sku) if sku else purchase
            context = purchase_context(renderer, step, sample, SIGNING, locale=locale)
            email = renderer.render_variant(variant, context)
            assert len(email.subject) <= MAX_SUBJECT_CHARS
            assert max(len(email.html), len(email.text)) <= sandbox.MAX_OUTPUT_CHARS
            rendered += 1
    assert rendered == 8


Loyalloop = Callable[..., Result]


def test_check_fails_a_template_that_cannot_cope_with_the_worst_case(
    loyalloop: Loyalloop, templates_copy: Path
):
    """Fine for three items, not for 500: every item's SKU beside every other's."""
    edit(templates_copy, "day_21/body.txt", "{% extends '_shared/layout.txt' %}{% block body %}\n"
         "{% for a in items %}{% for b in items %}{{ a.sku }}{{ b.sku }}{% endfor %}{% endfor %}"
         "\n{% endblock %}")
    result = loyalloop("templates", "check", "--dir", str(templates_copy))
    assert result.exit_code == 1, result.output
    [problem] = [line for line in result.output.splitlines() if "day_21/body.txt" in line]
    assert "day_21/body.txt:2: " in problem and f"(sample purchase {WORST})" in problem


def test_a_new_product_override_is_checked_with_the_worst_case(
    loyalloop: Loyalloop, templates_copy: Path
):
    """Its product takes the place of the worst case's last item: 500 is all the intake takes."""
    shutil.copytree(templates_copy / "day_1/sku/KETTLE-1", templates_copy / "day_1/sku/MUG-9")
    result = loyalloop("templates", "check", "--dir", str(templates_copy))
    assert result.exit_code == 0, result.output
    assert "ok: 10 templates of 4 steps" in result.output


async def test_the_worst_case_goes_through_a_whole_lifecycle(kit: LifecycleKit):
    """In a locale and of products with no override, so each step renders its largest email
    (day_1 lists all 500 items)."""
    data = worst_case().model_dump(mode="json")
    data.update(shop_id=kit.shop_id, order_id=data["order_id"][:-8] + "lifecycl",
                placed_at=(await kit.now()).isoformat())
    data["customer"]["locale"] = "de-Abcdefgh"
    for item, sku in zip(data["items"], ("A" * 128, "B" * 128), strict=False):
        item["sku"] = sku
    handle = await kit.buy(PurchaseEvent.model_validate(data))
    summary = await handle.result()
    assert summary.emails_sent == 4 and summary.emails_failed == 0
    subjects = [message.subject for message in kit.outbox(handle.id)]
    assert len(subjects) == 4 and all(len(s) <= MAX_SUBJECT_CHARS for s in subjects)
