"""The one configuration object, read from the environment (and a `.env` file).

The worker, the intake and the command line each call `get_settings()` once and pass the
result down; nothing else reads the environment.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.rules import LifecycleRules

ROOT = Path(__file__).resolve().parent
DATA_DIR = ROOT / ".loyalloop"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_api_key: SecretStr | None = None
    temporal_ui_url: str = Field("http://localhost:8233", validation_alias="LOYALLOOP_TEMPORAL_UI")

    database_url: str = f"sqlite:///{DATA_DIR / 'loyalloop.db'}"

    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str | None = None
    from_email: str = Field("hello@loyalloop.example", validation_alias="LOYALLOOP_FROM_EMAIL")
    send_rate_per_second: float = Field(50.0, validation_alias="LOYALLOOP_SEND_RATE")

    shop_keys: str = Field("", validation_alias="LOYALLOOP_SHOP_KEYS")
    shopify_secrets: str = Field("", validation_alias="LOYALLOOP_SHOPIFY_SECRETS")
    templates_dir: Path = Field(ROOT / "templates", validation_alias="LOYALLOOP_TEMPLATES_DIR")
    public_url: str = Field("https://loyalloop.example", validation_alias="LOYALLOOP_PUBLIC_URL")
    link_secret: SecretStr = Field(
        SecretStr("dev-only-link-secret"), validation_alias="LOYALLOOP_LINK_SECRET"
    )

    day_seconds: int = Field(86400, gt=0, validation_alias="LOYALLOOP_DAY_SECONDS")
    rules_file: Path | None = Field(None, validation_alias="LOYALLOOP_RULES_FILE")

    lifecycle_task_queue: str = Field(
        "loyalloop-lifecycles", validation_alias="LOYALLOOP_TASK_QUEUE"
    )
    email_task_queue: str = Field("loyalloop-emails", validation_alias="LOYALLOOP_EMAIL_TASK_QUEUE")
    metrics_port: int | None = Field(None, validation_alias="LOYALLOOP_METRICS_PORT")

    def rules(self) -> LifecycleRules:
        """The schedule and reward rules every new lifecycle is started with."""
        overrides = json.loads(self.rules_file.read_text()) if self.rules_file else {}
        overrides.setdefault("day_seconds", self.day_seconds)
        return LifecycleRules.from_dict(overrides)

    def shop_key_map(self) -> dict[str, str]:
        return _pairs(self.shop_keys, "LOYALLOOP_SHOP_KEYS")

    def shopify_secret_map(self) -> dict[str, str]:
        return _pairs(self.shopify_secrets, "LOYALLOOP_SHOPIFY_SECRETS")


def _pairs(raw: str, name: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        shop, sep, secret = item.partition(":")
        if not sep or not shop or not secret:
            raise ValueError(f"{name}: expected 'shop:secret' pairs, got {item!r}")
        pairs[shop] = secret
    return pairs


@lru_cache
def get_settings() -> Settings:
    return Settings()
