"""`loyalloop templates preview` and `GET /templates/{name}/preview` show what a customer gets:
the override a send would choose, the subject, and the text part beside the HTML part."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from fastapi import FastAPI
from fastapi.testclient import TestClient

from intake.preview import make_preview_router
from messages.render import TemplateRenderer
from tests.templates.files import edit, replace

Loyalloop = Callable[..., Result]

PURCHASE = {
    "shop_id": "acme",
    "order_id": "1001",
    "placed_at": "2026-11-20T10:00:00Z",
    "customer": {"id": "c-42", "email": "ana@example.com", "first_name": "Ana", "locale": "pt",
                 "timezone": "Europe/Lisbon", "marketing_consent": True},
    "items": [{"sku": "GRINDER-2", "name": "Burr grinder", "quantity": 1, "unit_price": "89.00"}],
    "total": "89.00",
    "currency": "EUR",
    "referral": {"code": "MAYA10"},
}


@pytest.fixture
def purchase_file(tmp_path: Path) -> Path:
    path = tmp_path / "purchase.json"
    path.write_text(json.dumps(PURCHASE))
    return path


def test_preview_prints_what_the_customer_gets(
    loyalloop: Loyalloop, templates_copy: Path, purchase_file: Path
):
    result = loyalloop("templates", "preview", "day_1", "--purchase", str(purchase_file),
                       "--dir", str(templates_copy))
    assert result.exit_code == 0, result.output
    assert "Template: day_1/locale/pt (version " in result.output
    assert "Subject: Ana, vamos preparar a sua encomenda" in result.output
    assert "Burr grinder (https://acme.example/products/burr-grinder)" in result.output
    assert "<p>Olá Ana,</p>" in result.output


def test_preview_in_another_locale_to_a_page(
    loyalloop: Loyalloop, templates_copy: Path, purchase_file: Path, tmp_path: Path
):
    out = tmp_path / "preview.html"
    result = loyalloop("templates", "preview", "referral_prompt", "--purchase", str(purchase_file),
                       "--locale", "en", "--out", str(out), "--dir", str(templates_copy))
    assert result.exit_code == 0, result.output
    assert "Subject: Ana, share Acme Coffee Gear and your friends save" in result.output
    page = out.read_text()
    assert '<span class="subject" id="subject">Ana, share Acme Coffee Gear' in page
    assert "You found us through MAYA10" in page  # text part, and HTML part in srcdoc
    assert "<iframe sandbox" in page and "srcdoc=\"&lt;!doctype html&gt;" in page


def test_preview_sees_an_edit_at_once(
    loyalloop: Loyalloop, templates_copy: Path, purchase_file: Path
):
    args = ("templates", "preview", "day_21", "--purchase", str(purchase_file), "--dir",
            str(templates_copy))
    before = loyalloop(*args).output
    replace(templates_copy, "day_21/subject.txt", "your next step", "your best next step")
    after = loyalloop(*args).output
    assert "your best next step" in after and "your best next step" not in before
    assert before.split("\n")[0] != after.split("\n")[0]  # another version hash


def test_preview_of_a_broken_template_names_file_and_line(
    loyalloop: Loyalloop, templates_copy: Path, purchase_file: Path
):
    edit(templates_copy, "day_1/locale/pt/subject.txt", "Olá {{ customer.first }")
    result = loyalloop("templates", "preview", "day_1", "--purchase", str(purchase_file),
                       "--dir", str(templates_copy))
    assert result.exit_code == 1
    assert "day_1/locale/pt/subject.txt:1: TemplateSyntaxError" in result.output


@pytest.mark.parametrize(("args", "expected"), [
    (("nope",), "nope: no such template step"),
    (("day_1", "--locale", "pt BR"), "--locale 'pt BR': must be a language tag"),
    (("../day_1",), "no such template step"),
])
def test_preview_refuses_bad_input(
    loyalloop: Loyalloop, templates_copy: Path, purchase_file: Path, args: tuple[str, ...],
    expected: str,
):
    result = loyalloop("templates", "preview", *args, "--purchase", str(purchase_file),
                       "--dir", str(templates_copy))
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output


def test_preview_refuses_a_bad_purchase(loyalloop: Loyalloop, templates_copy: Path,
                                        tmp_path: Path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**PURCHASE, "total": 89.0}))
    result = loyalloop("templates", "preview", "day_1", "--purchase", str(bad))
    assert result.exit_code == 2
    assert "total: must be a decimal string" in result.output


@pytest.fixture
def http(templates_copy: Path) -> TestClient:
    app = FastAPI()
    app.include_router(make_preview_router(lambda: TemplateRenderer(templates_copy), dev=True))
    return TestClient(app)


def test_page_shows_subject_text_and_html(http: TestClient):
    response = http.get("/templates/day_7/preview", params={"sample": "joao-pt-two-products"})
    assert response.status_code == 200
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    page = response.text
    subject = "How is it going with your Burr grinder, João?"
    assert f'<span class="subject" id="subject">{subject}' in page
    assert '<pre id="text">Hi João,' in page
    assert "srcdoc=\"&lt;!doctype html&gt;" in page


def test_query_picks_the_override(http: TestClient):
    def chosen(**params: str | list[str]) -> str:
        response = http.get("/templates/day_1/preview", params={**params, "format": "json"})
        assert response.status_code == 200, response.text
        return str(response.json()["template_name"])

    assert chosen(sample="nameless-de-unknown-product") == "day_1"
    assert chosen(sample="nameless-de-unknown-product", locale="pt-BR") == "day_1/locale/pt"
    assert chosen(sample="nameless-de-unknown-product", sku="KETTLE-1") == "day_1/sku/KETTLE-1"
    assert chosen(sample="bia-pt-br-friend-referral") == "day_1/locale/pt"


def test_product_override_speaks_of_its_own_product(http: TestClient):
    """João bought a grinder and a kettle, in that order: the kettle's override links the
    kettle, not the order's first product."""
    response = http.get("/templates/day_1/preview",
                        params={"sample": "joao-pt-two-products", "format": "json"})
    assert response.json()["template_name"] == "day_1/sku/KETTLE-1/locale/pt"
    assert ('<a href="https://acme.example/products/pour-over-kettle">Mais sobre a sua chaleira</a>'
            in response.json()["html"])


def test_version_changes_with_any_words_the_customer_gets(http: TestClient, templates_copy: Path):
    """The version (template hash) covers the parts, the shared partials and the product and
    shop data, and nothing else."""
    def version() -> str:
        response = http.get("/templates/day_21/preview", params={"format": "json"})
        return str(response.json()["template_hash"])

    versions = [version()]
    edit(templates_copy, "day_7/subject.txt", "Another step's subject")
    versions.append(version())
    for name, old, new in [
        ("day_21/body.txt", "Three weeks", "Three whole weeks"),
        ("_shared/footer.html", "from these emails", "from all our emails"),
        ("products.json", "A burr grinder", "A good burr grinder"),
        ("shops.json", "Rua do Café 12", "Rua do Café 14"),
    ]:
        replace(templates_copy, name, old, new)
        versions.append(version())
    assert versions[0] == versions[1]
    assert len(set(versions[1:])) == 5


def test_posted_purchase_is_previewed(http: TestClient):
    response = http.post("/templates/referral_prompt/preview", json=PURCHASE,
                         params={"format": "json"})
    assert response.status_code == 200
    assert response.json()["subject"] == "Ana, partilhe a Acme Coffee Gear e os seus amigos poupam"


def test_page_of_a_broken_template(http: TestClient, templates_copy: Path):
    replace(templates_copy, "day_21/body.html", "{{ shop.name }}", "{{ shop.nam }}")
    response = http.get("/templates/day_21/preview")
    assert response.status_code == 422
    assert "day_21/body.html:8: UndefinedError" in response.text


@pytest.mark.parametrize(("path", "params", "status", "field"), [
    ("/templates/nope/preview", {}, 404, "name"),
    ("/templates/_shared/preview", {}, 404, "name"),
    ("/templates/day_1/preview", {"sample": "nobody"}, 422, "sample"),
    ("/templates/day_1/preview", {"locale": "x y"}, 422, "locale"),
    ("/templates/day_1/preview", {"sku": "a b"}, 422, "sku"),
])
def test_bad_requests_name_the_field(
    http: TestClient, path: str, params: dict[str, str], status: int, field: str
):
    response = http.get(path, params=params)
    assert response.status_code == status
    assert response.json()["problems"][0]["field"] == field


def test_bad_posted_purchase_names_the_field(http: TestClient):
    response = http.post("/templates/day_1/preview", json={**PURCHASE, "currency": "EURO"})
    assert response.status_code == 422
    assert response.json()["problems"][0]["field"] == "currency"
