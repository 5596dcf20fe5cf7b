"""The one configuration object, read from the environment (and a `.env` file).

The worker, the intake and the command line each call `get_settings()` once and pass the
result down; nothing else reads the environment.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.rules import LifecycleRules

ROOT = Path(__file__).resolve().parent
# Relative, so the working directory's: an installed package never writes into site-packages,
# and two checkouts never share a database. `loyalloop dev` leaves its settings in DEV_ENV.
DATA_DIR = Path(".loyalloop")
DEV_ENV = DATA_DIR / "dev.env"
DEV_PID = "LOYALLOOP_DEV_PID"
# Public (it is in this file), so it signs links only where they never leave the machine:
# `loyalloop dev`, `simulate`, the tests and the benchmark. The worker and the intake refuse it.
DEV_LINK_SECRET = "dev-only-link-secret"
MIN_SECRET_CHARS = 16  # a shop key or link secret shorter than this can be guessed or is a typo
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
NEW_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_api_key: SecretStr | None = None
    temporal_ui_url: str = Field("http://localhost:8233", validation_alias="LOYALLOOP_TEMPORAL_UI")

    @field_validator("temporal_tls_cert", "temporal_tls_key", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        """`TEMPORAL_TLS_CERT=` (compose passes an unset variable as empty) means no file, not
        the working directory."""
        return None if value == "" else value

    # A SecretStr as a whole, though only its password is secret: a type that makes every use ask
    # for the value keeps the password out of reprs and log lines (show it through
    # database.session.displayed, which masks the password).
    database_url: SecretStr = Field(
        default_factory=lambda: SecretStr(f"sqlite:///{(DATA_DIR / 'loyalloop.db').resolve()}")
    )

    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str | None = None
    from_email: str = Field("hello@loyalloop.example", validation_alias="LOYALLOOP_FROM_EMAIL")
    send_rate_per_second: float = Field(50.0, validation_alias="LOYALLOOP_SEND_RATE")
    # SendGrid's Signed Event Webhook verification key (base64 DER, as its settings page shows
    # it); without it `POST /webhooks/sendgrid` answers 404.
    sendgrid_webhook_key: SecretStr | None = Field(
        None, validation_alias="LOYALLOOP_SENDGRID_WEBHOOK_KEY"
    )
    # Wall-clock seconds, not lifecycle time: it waits on SendGrid's event delivery, which a
    # compressed day does not make faster (docs/lifecycle.md: "A send SendGrid may have taken").
    uncertain_send_wait: float = Field(
        600.0, gt=0, validation_alias="LOYALLOOP_UNCERTAIN_SEND_WAIT"
    )

    # `shop:key,…` pairs: secrets, so never in a repr, a log line or an error
    shop_keys: SecretStr = Field(SecretStr(""), validation_alias="LOYALLOOP_SHOP_KEYS")
    shopify_secrets: SecretStr = Field(SecretStr(""), validation_alias="LOYALLOOP_SHOPIFY_SECRETS")
    shopify_domains: str = Field("", validation_alias="LOYALLOOP_SHOPIFY_DOMAINS")
    templates_dir: Path = Field(ROOT / "templates", validation_alias="LOYALLOOP_TEMPLATES_DIR")
    public_url: str = Field("https://loyalloop.example", validation_alias="LOYALLOOP_PUBLIC_URL")
    # the query parameter a shop's storefront reads a referral code from (shops.json may say)
    referral_param: str = Field("ref", validation_alias="LOYALLOOP_REFERRAL_PARAM")
    link_secret: SecretStr = Field(
        SecretStr(DEV_LINK_SECRET), validation_alias="LOYALLOOP_LINK_SECRET"
    )

    day_seconds: int = Field(86400, gt=0, validation_alias="LOYALLOOP_DAY_SECONDS")
    rules_file: Path | None = Field(None, validation_alias="LOYALLOOP_RULES_FILE")

    lifecycle_task_queue: str = Field(
        "loyalloop-lifecycles", validation_alias="LOYALLOOP_TASK_QUEUE"
    )
    email_task_queue: str = Field("loyalloop-emails", validation_alias="LOYALLOOP_EMAIL_TASK_QUEUE")
    metrics_port: int | None = Field(None, validation_alias="LOYALLOOP_METRICS_PORT")

    def rules(self) -> LifecycleRules:
        """The schedule and reward rules every new lifecycle is started with. A rules file that
        cannot be read or is wrong is a ValueError naming the file and what is wrong."""
        overrides = self._rules_overrides()
        overrides.setdefault("day_seconds", self.day_seconds)
        try:
            return LifecycleRules.from_dict(overrides)
        except (ValueError, TypeError) as error:
            raise ValueError(f"LOYALLOOP_RULES_FILE {self.rules_file}: {error}") from None

    def _rules_overrides(self) -> dict[str, Any]:
        if self.rules_file is None:
            return {}
        where = f"LOYALLOOP_RULES_FILE {self.rules_file}"
        try:
            raw = json.loads(self.rules_file.read_text())
        except OSError as error:
            raise ValueError(f"{where}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise ValueError(f"{where}: not UTF-8 text") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON ({error.msg} at line {error.lineno} "
                             f"column {error.colno})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: must be a JSON object of rules")
        return raw

    def shop_key_map(self) -> dict[str, str]:
        keys = _pairs(self.shop_keys.get_secret_value(), "LOYALLOOP_SHOP_KEYS")
        for shop, key in keys.items():
            if len(key) < MIN_SECRET_CHARS:
                raise ValueError(
                    f"LOYALLOOP_SHOP_KEYS: the key of shop {shop!r} is {len(key)} characters; "
                    f"use at least {MIN_SECRET_CHARS} (make one: {NEW_SECRET})"
                )
        return keys

    def shopify_secret_map(self) -> dict[str, str]:
        return _pairs(self.shopify_secrets.get_secret_value(), "LOYALLOOP_SHOPIFY_SECRETS")

    def shopify_domain_map(self) -> dict[str, str]:
        """Each shop's `*.myshopify.com` domain, lower-cased: Shopify names it in
        `X-Shopify-Shop-Domain`, and one app's secret signs the webhooks of every shop it is
        installed on, so the signature alone does not say whose order it is."""
        pairs = _pairs(self.shopify_domains, "LOYALLOOP_SHOPIFY_DOMAINS")
        domains = {shop: domain.strip().lower() for shop, domain in pairs.items()}
        for shop, domain in domains.items():
            if not HOST_NAME.match(domain):
                raise ValueError(f"LOYALLOOP_SHOPIFY_DOMAINS: {domain!r} (shop {shop!r}) is not "
                                 "a host name such as acme.myshopify.com")
        return domains

    def check_for_worker(self) -> None:
        """Start-up checks of `loyalloop worker`: raises ValueError, one line, naming the
        setting to fix."""
        self.rules()
        self._check_link_secret()

    def check_for_intake(self) -> None:
        """Start-up checks of `loyalloop api`, beside the worker's: every shop key long enough,
        and a Shopify domain for every shop with a Shopify secret (else all its webhooks would
        be refused)."""
        self.shop_key_map()
        domains = self.shopify_domain_map()
        for shop in self.shopify_secret_map():
            if shop not in domains:
                raise ValueError(
                    f"LOYALLOOP_SHOPIFY_DOMAINS: shop {shop!r} has a Shopify secret but no "
                    f"domain: add '{shop}:<store>.myshopify.com'"
                )
        self.rules()
        self._check_link_secret()

    def _check_link_secret(self) -> None:
        """With the built-in secret anyone could sign a customer's unsubscribe link."""
        secret = self.link_secret.get_secret_value()
        if secret == DEV_LINK_SECRET:
            raise ValueError(
                "LOYALLOOP_LINK_SECRET is not set: it signs the links in emails, and the built-in "
                f"one is public (for `loyalloop dev` only); make one: {NEW_SECRET}"
            )
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError(f"LOYALLOOP_LINK_SECRET is {len(secret)} characters; use at least "
                             f"{MIN_SECRET_CHARS} (make one: {NEW_SECRET})")


def _pairs(raw: str, name: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        shop, sep, secret = item.partition(":")
        if not sep or not shop or not secret:
            raise ValueError(f"{name}: expected 'shop:secret' pairs, got {item!r}")
        pairs[shop] = secret
    return pairs


def running_dev_env(path: Path = DEV_ENV) -> Path | None:
    """`loyalloop dev`'s settings file while that dev runs; one left by a dev that was killed
    (its process gone) is ignored, and the next dev overwrites it."""
    try:
        found = re.search(rf"^{DEV_PID}=(\d+)$", path.read_text(), re.MULTILINE)
    except (OSError, UnicodeDecodeError):
        return None
    if found is None:
        return None
    try:
        os.kill(int(found[1]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return path


@lru_cache
def get_settings() -> Settings:
    """The environment over `.loyalloop/dev.env` (while `dev` runs here) over `.env`."""
    dev_env = running_dev_env()
    if dev_env is None:
        return Settings()
    settings = Settings(_env_file=(".env", dev_env))  # type: ignore[call-arg]
    # dev's Temporal is local: credentials in `.env` for another one do not apply to it.
    local = ("temporal_api_key", "temporal_tls_cert", "temporal_tls_key")
    return settings.model_copy(update={f: None for f in local if f.upper() not in os.environ})
