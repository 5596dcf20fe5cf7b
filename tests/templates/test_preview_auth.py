"""Template previews show a shop's templates and purchases: outside `loyalloop dev` they need a
shop's key, as a Bearer token from a tool or a Basic sign-in from a browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from intake.auth import ShopKeys
from intake.preview import make_preview_router
from messages.render import TemplateRenderer
from tests.templates.test_preview import PURCHASE

KEY = "acme-key-0123456789"
OTHER_KEY = "other-key-0123456789"
PAGE = "/templates/day_1/preview"


def _client(templates_copy: Path, **access: object) -> TestClient:
    app = FastAPI()
    app.include_router(make_preview_router(lambda: TemplateRenderer(templates_copy), **access))
    return TestClient(app)


@pytest.fixture
def production(templates_copy: Path) -> TestClient:
    return _client(templates_copy, keys=ShopKeys({"acme": KEY, "other": OTHER_KEY}))


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer not-a-key-of-anyone"},
    {"Authorization": f"Token {KEY}"},
    {"Authorization": "Basic !!!"},
], ids=["none", "wrong key", "wrong scheme", "bad basic"])
def test_a_preview_without_a_shop_key_is_refused(production: TestClient, headers: dict[str, str]):
    for response in (production.get(PAGE, headers=headers),
                     production.post(PAGE, json=PURCHASE, headers=headers)):
        assert response.status_code == 401
        assert response.json()["problems"][0]["field"] == "Authorization"
        challenges = response.headers.get_list("www-authenticate")
        assert any(c.startswith("Bearer") for c in challenges)
        assert any(c.startswith("Basic") for c in challenges)  # a browser asks for the key
        assert "Ana" not in response.text and "<html" not in response.text


def test_a_shop_key_opens_the_preview(production: TestClient):
    response = production.get(PAGE, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200 and 'id="subject"' in response.text
    posted = production.post(PAGE, json=PURCHASE, params={"format": "json"},
                             headers={"Authorization": f"Bearer {KEY}"})
    assert posted.status_code == 200 and posted.json()["template_name"] == "day_1/locale/pt"


def test_a_browser_signs_in_with_the_shop_and_its_key(production: TestClient):
    assert production.get(PAGE, auth=("acme", KEY)).status_code == 200
    assert production.get(PAGE, auth=("other", KEY)).status_code == 401
    assert production.get(PAGE, auth=("acme", OTHER_KEY)).status_code == 401


def test_a_shop_previews_only_its_own_purchases(production: TestClient):
    other = {"Authorization": f"Bearer {OTHER_KEY}"}
    response = production.post(PAGE, json=PURCHASE, headers=other)
    assert response.status_code == 403
    assert response.json()["problems"][0]["field"] == "shop_id"


def test_without_keys_every_preview_is_refused(templates_copy: Path):
    """How a router made without a decision behaves: closed, not open."""
    client = _client(templates_copy)
    assert client.get(PAGE).status_code == 401
    assert client.get(PAGE, headers={"Authorization": f"Bearer {KEY}"}).status_code == 401


def test_under_dev_previews_need_no_key(templates_copy: Path):
    client = _client(templates_copy, dev=True)
    assert client.get(PAGE).status_code == 200
    assert client.post(PAGE, json=PURCHASE).status_code == 200
