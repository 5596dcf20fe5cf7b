"""The intake over HTTP (httpx on the ASGI app), wired to the real service, real workers on the
time-skipping server and a real database. Two shops are configured, so every test can check
that one shop's key does not reach the other's orders."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from database.models import Customer, Purchase, Refund
from intake.app import create_app
from intake.service import LifecycleService
from temporal_client import temporal_binary
from tests.conftest import register_search_attributes
from tests.lifecycle_kit import LifecycleKit

SHOP_DOMAIN = "ana-kettles.myshopify.com"


@dataclass
class Intake:
    http: httpx.AsyncClient
    kit: LifecycleKit
    key: str
    other_shop: str
    other_key: str
    shopify_secret: str

    @property
    def shop_id(self) -> str:
        return self.kit.shop_id

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def purchase(self, order_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """A valid purchase event of this shop, as JSON, with `fields` replaced."""
        event = self.kit.purchase(order_id or f"o-{uuid.uuid4().hex[:8]}").model_dump(mode="json")
        event.pop("referral")
        return event | fields

    async def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await self.http.post(path, content=content, headers=self.auth | headers)

    def signed(self, body: bytes, secret: str | None = None) -> dict[str, str]:
        digest = hmac.new((secret or self.shopify_secret).encode(), body, hashlib.sha256).digest()
        return {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
                "X-Shopify-Topic": "orders/create", "Content-Type": "application/json",
                "X-Shopify-Shop-Domain": SHOP_DOMAIN}

    def written(self) -> tuple[int, int, int]:
        """Rows the intake writes (purchases, customers, refunds), to prove a refusal wrote none."""
        with self.kit.sessions() as session:
            return tuple(  # type: ignore[return-value]
                session.scalar(select(func.count()).select_from(model))
                for model in (Purchase, Customer, Refund)
            )


def make_intake_app(kit: LifecycleKit, service: LifecycleService | None = None, **keys: str):  # type: ignore[no-untyped-def]
    settings = kit.settings.model_copy(update=keys)
    return create_app(settings, service or kit.service)


@pytest.fixture
async def env(
    env: WorkflowEnvironment, request: pytest.FixtureRequest
) -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of each test's own (a quarter second to start): intake tests leave
    lifecycles open, and one ended while its task is in flight stops that server's clock for
    every later test (a test-server quirk)."""
    if request.config.getoption("--workflow-environment") != "time-skipping":
        yield env
        return
    own = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_binary("temporal-test-server")
    )
    await register_search_attributes(own.client)
    yield own
    await own.shutdown()


@pytest.fixture
async def intake(kit: LifecycleKit) -> AsyncIterator[Intake]:
    key, other_key, secret = (uuid.uuid4().hex for _ in range(3))
    other_shop = f"other-{uuid.uuid4().hex[:8]}"
    app = make_intake_app(
        kit, shop_keys=f"{kit.shop_id}:{key},{other_shop}:{other_key}",
        shopify_secrets=f"{kit.shop_id}:{secret}", shopify_domains=f"{kit.shop_id}:{SHOP_DOMAIN}",
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        yield Intake(http, kit, key, other_shop, other_key, secret)


def assert_refusal(response: httpx.Response, status: int, field: str | None = None) -> None:
    """A refusal has the one JSON shape, names the field, and shows no stack trace."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert body["problems"], body
    for problem in body["problems"]:
        assert set(problem) == {"field", "problem"}, problem
        assert "Traceback" not in problem["problem"]
    if field is not None:
        assert field in [p["field"] for p in body["problems"]], body
