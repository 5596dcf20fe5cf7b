"""The public pages over HTTP (httpx on the ASGI app), wired to the real service, real workers
on the time-skipping server and a real database. The templates are a copy whose shops.json
configures this test's shop, so a redirect's target is known exactly."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from database.models import AuditEntry, Customer, ReferralClick
from intake.app import create_app
from messages.context import unsubscribe_url
from tests.lifecycle_kit import LifecycleKit

SHOP_URL = "https://store.example/welcome?utm_source=loyalloop"
BRAND = "#0a7d5a"
PUBLIC_URL = "https://go.loyalloop.example"


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    """A copy of the templates; `configure_shop` adds the test's shop to its shops.json."""
    copy = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parents[2] / "templates", copy)
    return copy


def configure_shop(templates_dir: Path, shop_id: str, **fields: object) -> None:
    shops_file = templates_dir / "shops.json"
    shops = json.loads(shops_file.read_text())
    shops[shop_id] = {"name": "Ana's Kettles", "address": "1 Rua, Lisboa", "url": SHOP_URL,
                      "colors": {"brand": BRAND}, **fields}
    shops_file.write_text(json.dumps(shops))


@dataclass
class Public:
    http: httpx.AsyncClient
    kit: LifecycleKit

    @property
    def shop_id(self) -> str:
        return self.kit.shop_id

    def link(self, customer_id: str = "c-42", shop_id: str | None = None) -> str:
        """The customer's unsubscribe link, as their email carries it, without the host."""
        url = unsubscribe_url(PUBLIC_URL, self.kit.settings.link_secret.get_secret_value(),
                              shop_id or self.shop_id, customer_id)
        return url.removeprefix(PUBLIC_URL)

    def customer(self, customer_id: str = "c-42", **fields: object) -> Customer:
        with self.kit.sessions.begin() as session:
            customer = Customer(shop_id=self.shop_id, customer_id=customer_id,
                                email=f"{customer_id}@example.com", **fields)
            session.add(customer)
        return customer

    def unsubscribed_at(self, customer_id: str = "c-42"):  # type: ignore[no-untyped-def]
        with self.kit.sessions() as session:
            return session.scalar(select(Customer.unsubscribed_at).where(
                Customer.shop_id == self.shop_id, Customer.customer_id == customer_id))

    def audit(self) -> list[tuple[str, str, str | None]]:
        with self.kit.sessions() as session:
            return [(a.actor, a.action, a.customer_id) for a in session.scalars(
                select(AuditEntry).where(AuditEntry.shop_id == self.shop_id)
                .order_by(AuditEntry.id))]

    def counts(self) -> tuple[int, int, int]:
        """Customers, audit entries and clicks of this shop: a refusal changes none."""
        with self.kit.sessions() as session:
            return tuple(  # type: ignore[return-value]
                session.scalar(select(func.count()).select_from(model)
                               .where(model.shop_id == self.shop_id))
                for model in (Customer, AuditEntry, ReferralClick)
            )


@pytest.fixture
async def public(kit: LifecycleKit, templates_dir: Path) -> AsyncIterator[Public]:
    configure_shop(templates_dir, kit.shop_id)
    settings = kit.settings.model_copy(
        update={"shop_keys": SecretStr(f"{kit.shop_id}:{uuid.uuid4().hex}")}
    )
    app = create_app(settings, kit.service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://go.loyalloop.example") as http:
        yield Public(http, kit)
