"""Support lifts a bounce suppression (audited, with the actor), never a spam report's: that
needs the customer's own resubscribe, and the refusal says so and changes nothing."""

from __future__ import annotations

import asyncio

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from cli.main import main
from database.models import AuditEntry, EmailEvent
from intake import subscription
from settings import get_settings
from support.audit import Actor
from support.erase import erase_customer
from support.errors import ActionRefused
from support.resubscribe import resubscribe
from tests.webhooks.conftest import Webhook, event

ACTOR = Actor("sam.support", "customer fixed their mailbox")


async def _suppress(webhook: Webhook, kind: str, **fields: object) -> None:
    webhook.customer()
    response = await webhook.post([event(kind, email_id=str(webhook.email()),
                                          shop_id=webhook.shop_id, **fields)])
    assert response.status_code == 200


async def test_support_lifts_a_bounce_suppression_and_it_is_audited(webhook: Webhook) -> None:
    await _suppress(webhook, "bounce", type="bounce")

    done = resubscribe(webhook.sessions, webhook.shop_id, "c-42", ACTOR)

    assert done.suppression_lifted == "bounce"
    assert webhook.suppression().reason is None
    with webhook.sessions() as session:
        entry = session.get_one(AuditEntry, done.audit_id)
        assert (entry.actor, entry.action, entry.shop_id, entry.customer_id, entry.reason) == (
            "sam.support", "resubscribe", webhook.shop_id, "c-42", ACTOR.reason)


async def test_a_spam_reports_suppression_is_not_supports_to_lift(webhook: Webhook) -> None:
    await _suppress(webhook, "spamreport")
    with webhook.sessions() as session:
        audits = session.scalars(select(AuditEntry.id)
                                 .where(AuditEntry.shop_id == webhook.shop_id)).all()

    with pytest.raises(ActionRefused, match="only the customer's own resubscribe"):
        resubscribe(webhook.sessions, webhook.shop_id, "c-42", ACTOR)

    assert webhook.suppression().reason == "spamreport"
    with webhook.sessions() as session:
        assert session.scalars(select(AuditEntry.id)
                               .where(AuditEntry.shop_id == webhook.shop_id)).all() == audits


async def test_the_customers_own_resubscribe_lifts_a_spam_report(webhook: Webhook) -> None:
    """What support may not lift, the customer's resubscribe button does, audited as theirs;
    the page offers it (the customer is shown as stopped) until then."""
    await _suppress(webhook, "spamreport")
    assert subscription.is_unsubscribed(webhook.sessions, webhook.shop_id, "c-42")

    change = subscription.resubscribe(webhook.sessions, webhook.shop_id, "c-42")

    assert change.changed
    assert webhook.suppression().reason is None
    assert not subscription.is_unsubscribed(webhook.sessions, webhook.shop_id, "c-42")
    with webhook.sessions() as session:
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.shop_id == webhook.shop_id, AuditEntry.action == "resubscribe")).one()
        assert (entry.actor, entry.customer_id, entry.detail["suppression_lifted"]) == (
            "customer", "c-42", "spamreport")
    assert not subscription.resubscribe(webhook.sessions, webhook.shop_id, "c-42").changed


async def test_nothing_to_lift_records_nothing(webhook: Webhook) -> None:
    webhook.customer()
    assert resubscribe(webhook.sessions, webhook.shop_id, "c-42", ACTOR).audit_id is None


async def test_another_shops_customer_is_not_found(webhook: Webhook) -> None:
    await _suppress(webhook, "bounce")
    with pytest.raises(ActionRefused, match="no customer"):
        resubscribe(webhook.sessions, f"{webhook.shop_id}-other", "c-42", ACTOR)
    assert webhook.suppression().reason == "bounce"


async def test_the_command_lifts_a_bounce_and_refuses_a_spam_report(
    webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = webhook.sessions.kw["bind"].url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    await _suppress(webhook, "bounce")
    other = webhook.customer("c-43", "bo@example.com")
    await webhook.post([event("spamreport", email_id=str(webhook.email(other)),
                              shop_id=webhook.shop_id)])

    async def loyalloop(*args: str) -> tuple[int, str]:
        get_settings.cache_clear()
        try:
            result = await asyncio.to_thread(CliRunner().invoke, main, list(args))
            return result.exit_code, result.output
        finally:
            get_settings.cache_clear()

    no_reason = await loyalloop("resubscribe", webhook.shop_id, "c-42", "--actor", "sam")
    lifted = await loyalloop("resubscribe", webhook.shop_id, "c-42", "--actor", "sam",
                             "--reason", "mailbox fixed")
    refused = await loyalloop("resubscribe", webhook.shop_id, "c-43", "--actor", "sam",
                              "--reason", "asked on the phone")

    assert no_reason[0] == 2 and "--reason" in no_reason[1]
    assert lifted[0] == 0 and "lifted the bounce suppression" in lifted[1], lifted
    assert refused[0] == 2 and "only the customer's own resubscribe" in refused[1], refused
    assert "Traceback" not in refused[1]


async def test_erasing_the_customer_rekeys_their_events_and_suppression(webhook: Webhook) -> None:
    await _suppress(webhook, "bounce", type="bounce")

    erased = erase_customer(webhook.sessions, webhook.shop_id, "c-42", ACTOR)

    with webhook.sessions() as session:
        ids = {(e.customer_id) for e in session.scalars(
            select(EmailEvent).where(EmailEvent.shop_id == webhook.shop_id))}
    assert ids == {erased.anonymous_id}
    assert webhook.suppression() is None
    assert webhook.suppression(erased.anonymous_id).reason == "bounce"
