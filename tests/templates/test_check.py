"""`loyalloop templates check` passes the shipped templates and catches each kind of mistake
with its file and line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.templates.files import edit, replace

Loyalloop = Callable[..., Result]


def test_shipped_templates_pass(loyalloop: Loyalloop, templates_copy: Path):
    result = loyalloop("templates", "check", "--dir", str(templates_copy))
    assert result.exit_code == 0, result.output
    assert "ok: 8 templates of 4 steps" in result.output
    assert "sample purchases" in result.output


def test_the_shipped_folder_itself_passes(loyalloop: Loyalloop):
    """What CI runs: the real templates/, found through the settings."""
    result = loyalloop("templates", "check")
    assert result.exit_code == 0, result.output


def _fails(loyalloop: Loyalloop, root: Path, *expected: str) -> str:
    result = loyalloop("templates", "check", "--dir", str(root))
    assert result.exit_code == 1, result.output
    for text in expected:
        assert text in result.output, result.output
    return result.output


def test_syntax_error_names_file_and_line(loyalloop: Loyalloop, templates_copy: Path):
    replace(templates_copy, "day_7/body.html", "<ul>", "<ul>{% if %}")
    _fails(loyalloop, templates_copy, "templates/day_7/body.html:5: TemplateSyntaxError")


def test_undefined_variable_names_file_and_line(loyalloop: Loyalloop, templates_copy: Path):
    replace(templates_copy, "day_1/locale/pt/body.txt", "Olá {{ customer.first_name }}",
            "Olá {{ customer.nickname }}")
    _fails(loyalloop, templates_copy,
           "templates/day_1/locale/pt/body.txt:2: UndefinedError: 'dict object' has no "
           "attribute 'nickname'")


def test_variable_missing_only_for_some_purchases(loyalloop: Loyalloop, templates_copy: Path):
    """`creator` is absent when nobody referred the customer: a sample without one catches an
    unguarded `creator.name`."""
    replace(templates_copy, "referral_prompt/body.txt", "{% if creator %}",
            "{{ creator.name }}{% if creator %}")
    output = _fails(loyalloop, templates_copy,
                    "templates/referral_prompt/body.txt:8: UndefinedError")
    assert "(sample purchase joao-pt-two-products)" in output


def test_error_in_a_shared_partial_names_the_partial(loyalloop: Loyalloop, templates_copy: Path):
    replace(templates_copy, "_shared/footer.html", "{{ shop.address }}", "{{ shop.adress }}")
    _fails(loyalloop, templates_copy, "templates/_shared/footer.html:2: UndefinedError")


def test_missing_part(loyalloop: Loyalloop, templates_copy: Path):
    (templates_copy / "day_1/locale/pt/body.txt").unlink()
    _fails(loyalloop, templates_copy, "templates/day_1/locale/pt/body.txt: missing part")


def test_missing_unsubscribe_link_in_html(loyalloop: Loyalloop, templates_copy: Path):
    edit(templates_copy, "day_21/body.html", "<p>Hi {{ customer.first_name }}</p>\n")
    output = _fails(loyalloop, templates_copy, "templates/day_21/body.html: marketing email "
                    "without the unsubscribe link")
    assert "day_21/body.txt" not in output


def test_unsubscribe_text_outside_a_link_does_not_count(loyalloop: Loyalloop, templates_copy: Path):
    edit(templates_copy, "day_21/body.html", "<p>Unsubscribe: {{ unsubscribe_url }}</p>\n")
    _fails(loyalloop, templates_copy, "templates/day_21/body.html: marketing email without")


def test_missing_unsubscribe_link_in_text(loyalloop: Loyalloop, templates_copy: Path):
    edit(templates_copy, "referral_prompt/locale/pt/body.txt", "Olá {{ customer.first_name }}\n")
    _fails(loyalloop, templates_copy, "templates/referral_prompt/locale/pt/body.txt: marketing "
           "email without the unsubscribe link")


def test_plain_http_link_in_a_template(loyalloop: Loyalloop, templates_copy: Path):
    replace(templates_copy, "day_21/body.html", '<a href="{{ shop.url }}">',
            '<a href="http://acme.example/new">')
    _fails(loyalloop, templates_copy,
           "templates/day_21/body.html:8: link is not https: 'http://acme.example/new'")


def test_plain_http_link_in_a_text_part(loyalloop: Loyalloop, templates_copy: Path):
    replace(templates_copy, "day_7/body.txt", "Still stuck?",
            "Forum: http://forum.example/help. Still stuck?")
    _fails(loyalloop, templates_copy, "templates/day_7/body.txt:6: link is not https: "
           "'http://forum.example/help'")


def test_plain_http_link_from_product_data(loyalloop: Loyalloop, templates_copy: Path):
    replace(templates_copy, "products.json", "https://acme.example/products/burr-grinder",
            "http://acme.example/products/burr-grinder")
    _fails(loyalloop, templates_copy, "templates/products.json:11: link is not https")


def test_relative_and_script_links_fail(loyalloop: Loyalloop, templates_copy: Path):
    replace(templates_copy, "day_7/body.html", "<ul>", '<ul><a href="/faq">FAQ</a>')
    replace(templates_copy, "day_21/body.html", "<p>Three",
            '<a href="javascript:alert(1)">x</a><p>Three')
    _fails(loyalloop, templates_copy, "link is not https: '/faq'",
           "link is not https: 'javascript:alert(1)'")


def test_sandbox_escape_fails_the_check(loyalloop: Loyalloop, templates_copy: Path):
    replace(templates_copy, "day_1/subject.txt", "{{ customer.first_name }}",
            "{{ cycler.__init__.__globals__ }}")
    _fails(loyalloop, templates_copy, "templates/day_1/subject.txt:1: not allowed")


def test_override_in_the_wrong_folder_is_never_used(loyalloop: Loyalloop, templates_copy: Path):
    shutil.copytree(templates_copy / "day_1/locale/pt", templates_copy / "day_1/locales/pt")
    _fails(loyalloop, templates_copy, "templates/day_1/locales/pt: never used")


def test_misnamed_part(loyalloop: Loyalloop, templates_copy: Path):
    (templates_copy / "day_7/subject.txt").rename(templates_copy / "day_7/subject.text")
    _fails(loyalloop, templates_copy, "templates/day_7/subject.text: not a part",
           "templates/day_7/subject.txt: missing part")


def test_broken_shop_data(loyalloop: Loyalloop, templates_copy: Path):
    edit(templates_copy, "shops.json", '{"acme": {"name": "Acme",}}')
    _fails(loyalloop, templates_copy, "templates/shops.json: not valid JSON")


def test_new_step_from_the_rules_needs_its_templates(
    loyalloop: Loyalloop, templates_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A shop adds a non-marketing `receipt` step: it needs templates but no unsubscribe link."""
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"steps": [
        {"step": "day_1", "day": 1}, {"step": "receipt", "day": 0, "marketing": False},
    ]}))
    monkeypatch.setenv("LOYALLOOP_RULES_FILE", str(rules))
    _fails(loyalloop, templates_copy, "templates/receipt/subject.txt: missing part")
    edit(templates_copy, "receipt/subject.txt", "Your receipt for {{ order.id }}")
    edit(templates_copy, "receipt/body.html", "<p>{{ order.total }} {{ order.currency }}</p>")
    edit(templates_copy, "receipt/body.txt", "{{ order.total }} {{ order.currency }}")
    result = loyalloop("templates", "check", "--dir", str(templates_copy))
    assert result.exit_code == 0, result.output
    assert "of 5 steps" in result.output


def test_templates_dir_from_the_environment(
    loyalloop: Loyalloop, templates_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    replace(templates_copy, "day_7/body.txt", "Hi {{ customer.first_name }}", "Hi {{ nobody }}")
    monkeypatch.setenv("LOYALLOOP_TEMPLATES_DIR", str(templates_copy))
    result = loyalloop("templates", "check")
    assert result.exit_code == 1
    assert "templates/day_7/body.txt:2: UndefinedError: 'nobody' is undefined" in result.output


def test_public_url_must_be_https(
    loyalloop: Loyalloop, templates_copy: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("LOYALLOOP_PUBLIC_URL", "http://localhost:8000")
    output = _fails(loyalloop, templates_copy, "LOYALLOOP_PUBLIC_URL: 'http://localhost:8000' "
                    "is not https: unsubscribe and referral links would not be either\n")
    assert output.count("LOYALLOOP_PUBLIC_URL") == 1


def test_a_hand_made_link_with_the_referral_code_fails(
    loyalloop: Loyalloop, templates_copy: Path
):
    """Only `{{ referral.link }}` (the public `/r/` link) counts the click."""
    replace(templates_copy, "referral_prompt/body.html", '<a href="{{ referral.link }}">',
            '<a href="{{ shop.url }}/?ref={{ referral.code }}">')
    _fails(loyalloop, templates_copy, "templates/referral_prompt/body.html: a link carrying "
           "the referral code that is not {{ referral.link }}")


def test_missing_templates_folder(loyalloop: Loyalloop, tmp_path: Path):
    result = loyalloop("templates", "check", "--dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert "templates folder does not exist" in result.output
