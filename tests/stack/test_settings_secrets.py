"""Every secret setting is a `SecretStr`: it never shows in a repr, a log line or an error, and
the one place that needs its value asks for it by name."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from settings import Settings

SECRETS = {
    "LOYALLOOP_SHOP_KEYS": "acme:shop-key-secret-000001",
    "LOYALLOOP_SHOPIFY_SECRETS": "acme:shopify-secret-000002",
    "LOYALLOOP_LINK_SECRET": "link-secret-000003-abcdef",
    "SENDGRID_API_KEY": "SG.sendgrid-secret-000004.abcdefghijklmnop",
    "LOYALLOOP_SENDGRID_WEBHOOK_KEY": "webhook-key-000005",
    "TEMPORAL_API_KEY": "temporal-api-key-000006",
}
# A URL is not a secret by its name, but its password is: the same standard holds for it.
DB_PASSWORD = "db-password-000007"
DATABASE_URL = f"postgresql+psycopg2://loyalloop:{DB_PASSWORD}@db.example:5432/loyalloop"


def test_no_secret_shows_in_a_repr_or_a_dump(monkeypatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DATABASE_URL", DATABASE_URL)
    settings = Settings(_env_file=None)
    shown = f"{settings!r} {settings} {settings.model_dump()} {settings.model_dump_json()}"
    assert [name for name, value in SECRETS.items() if value in shown] == []
    assert DB_PASSWORD not in shown
    # and each was read: the values are there for the code that asks
    assert settings.shop_key_map() == {"acme": "shop-key-secret-000001"}
    assert settings.shopify_secret_map() == {"acme": "shopify-secret-000002"}
    assert settings.database_url.get_secret_value() == DATABASE_URL


def _types(name: str) -> tuple[object, ...]:
    annotation = Settings.model_fields[name].annotation
    return (annotation, *getattr(annotation, "__args__", ()))


def test_every_setting_named_like_a_secret_is_a_secret_str() -> None:
    """A path to a key file (TEMPORAL_TLS_KEY) is not itself a secret."""
    named = [name for name in Settings.model_fields
             if any(word in name for word in ("key", "secret", "password", "token"))
             and Path not in _types(name)]
    assert len(named) >= 6, named
    assert [name for name in named if SecretStr not in _types(name)] == []
