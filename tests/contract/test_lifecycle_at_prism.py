"""Every email of whole lifecycles goes through the real SendGrid sender to Prism serving
SendGrid's own Mail Send description: unicode names, 200 items, every locale and product
override in templates/. Prism answers a request outside the contract with a 4xx, which the
sender records as a failed send, so a sent email here is one SendGrid's contract accepts; a
deliberately broken address shows the check fails when it should."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from database.models import Customer
from database.session import make_engine, make_sessionmaker, upgrade
from intake.store import workflow_id_for
from shop_events.schemas import PurchaseEvent
from tests.lifecycle_kit import LifecycleKit

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
LOCALES = sorted({p.name for p in TEMPLATES.glob("*/locale/*") if p.is_dir()})
SKUS = sorted({p.name for p in TEMPLATES.glob("*/sku/*") if p.is_dir()})
STEPS = ["day_1", "day_7", "referral_prompt", "day_21"]


@pytest.fixture
def own_sessions(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    return make_sessionmaker(make_engine(url))


@pytest.fixture
async def prism_kit(
    env: WorkflowEnvironment, own_sessions: sessionmaker[Session], prism_url: str
) -> AsyncIterator[LifecycleKit]:
    async with LifecycleKit.running(
        env, own_sessions, TEMPLATES, sendgrid_api_key="SG.contract-test", sendgrid_host=prism_url
    ) as kit:
        yield kit


async def purchase(
    kit: LifecycleKit,
    order_id: str,
    *,
    name: str = "Ana",
    locale: str = "en",
    skus: list[str] | None = None,
    item_names: list[str] | None = None,
    referral: str | None = None,
) -> PurchaseEvent:
    skus = skus or ["KETTLE-1"]
    names = item_names or [f"Item {sku}" for sku in skus]
    price = Decimal("1.50")
    return PurchaseEvent.model_validate(
        {
            "shop_id": kit.shop_id,
            "order_id": order_id,
            "placed_at": (await kit.now()).isoformat(),
            "customer": {
                "id": f"c-{order_id}",
                "email": f"c-{order_id}@example.com",
                "first_name": name,
                "locale": locale,
                "timezone": "Asia/Tokyo",
                "marketing_consent": True,
            },
            "items": [
                {"sku": sku, "name": item, "quantity": 1, "unit_price": str(price)}
                for sku, item in zip(skus, names, strict=True)
            ],
            "total": str(price * len(skus)),
            "currency": "EUR",
            **({"referral": {"code": referral}} if referral else {}),
        }
    )


async def sent_through_prism(kit: LifecycleKit, event: PurchaseEvent) -> list[str]:
    handle = await kit.buy(event)
    summary = await handle.result()
    emails = kit.emails(handle.id)
    problems = [f"{e.step}: {e.status} {e.last_error}" for e in emails if e.status != "sent"]
    assert not problems, problems
    # Prism's 202 carries no X-Message-Id, so the sender falls back to the idempotency key.
    assert all(
        e.provider == "sendgrid" and e.provider_message_id == e.idempotency_key for e in emails
    )
    assert summary.emails_sent == len(emails)
    return [e.step for e in emails]


async def test_a_whole_lifecycle_with_unicode_names_and_200_items(prism_kit: LifecycleKit):
    creator = prism_kit.add_creator("MAYA", name="Maya Ñúñez 山田 😀")
    event = await purchase(
        prism_kit,
        "u-1",
        name="Zoë 花子 Ñúñez-O'Brien 😀",
        referral=creator,
        skus=[f"SKU-{i}" for i in range(199)] + ["KETTLE-1"],
        item_names=[f"Café «{i}» — ポアオーバー <b>&amp;" for i in range(200)],
    )
    assert await sent_through_prism(prism_kit, event) == STEPS


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("sku", [*SKUS, "NO-OVERRIDE-1"])
async def test_every_locale_and_product_override(prism_kit: LifecycleKit, locale: str, sku: str):
    event = await purchase(prism_kit, f"{locale}-{sku}", name="João", locale=locale, skus=[sku])
    assert await sent_through_prism(prism_kit, event) == STEPS
    templates = {
        e.template_name
        for e in prism_kit.emails(workflow_id_for(prism_kit.shop_id, f"{locale}-{sku}"))
    }
    assert any(f"locale/{locale}" in (t or "") for t in templates), templates
    if sku in SKUS:
        assert any(f"sku/{sku}" in (t or "") for t in templates), templates


async def test_the_overrides_are_all_exercised():
    assert LOCALES and SKUS, "templates/ has no locale or product override left to check"


async def test_a_broken_address_is_refused_by_the_contract(prism_kit: LifecycleKit):
    handle = await prism_kit.buy(await purchase(prism_kit, "broken-1"))
    with prism_kit.sessions.begin() as session:
        customer = session.scalar(select(Customer).where(Customer.customer_id == "c-broken-1"))
        customer.email = "not-an-email"
    summary = await handle.result()
    emails = prism_kit.emails(handle.id)
    assert summary.emails_sent == 0 and summary.emails_failed == len(emails) == 4
    assert all(e.status == "failed" and "400" in (e.last_error or "") for e in emails)
