"""The SendGrid API key (and the customer's address) never reaches a log, even with every
logger at DEBUG: a whole lifecycle is sent through the real SendGrid sender (to a local
stand-in) while logs and output are read."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from database.session import make_engine, make_sessionmaker, upgrade
from settings import Settings
from tests.faults.fake_sendgrid import FaultySendGrid
from tests.lifecycle_kit import LifecycleKit

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.fixture
def own_sessions(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    return make_sessionmaker(make_engine(url))


async def test_the_sendgrid_key_is_never_logged(
    env: WorkflowEnvironment, own_sessions: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
):
    key = f"SG.never-log-me-{uuid.uuid4().hex}"
    provider = FaultySendGrid(key, seed=0, client_timeout_s=10.0, faults={})
    caplog.set_level(logging.DEBUG)
    with provider.serving() as url:
        async with LifecycleKit.running(
            env, own_sessions, TEMPLATES, sendgrid_api_key=key, sendgrid_host=url
        ) as kit:
            handle = await kit.buy(await kit.placed_now("secret-1"))
            summary = await handle.result()
            settings_shown = f"{kit.settings!r} {kit.settings}"
    assert summary.emails_sent == 4 and len(provider.log.accepted) == 4  # the key was used
    out, err = capfd.readouterr()
    assert caplog.records, "nothing was logged: the check would prove nothing"
    assert key not in caplog.text
    assert key not in out + err
    assert key not in settings_shown
    assert "c-42@example.com" not in caplog.text + out + err  # nor the customer's address


def test_settings_never_show_secrets():
    settings = Settings(
        sendgrid_api_key="SG.shown?", link_secret="link-shown?", temporal_api_key="t?"
    )
    shown = f"{settings!r} {settings} {settings.model_dump()}"
    assert "SG.shown?" not in shown and "link-shown?" not in shown and "t?'" not in shown
