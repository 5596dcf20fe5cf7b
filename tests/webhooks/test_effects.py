"""What each event does: which email it is about (custom args, then sg_message_id, then the
address within the shop), the provider's confirmation of a send still `sending`, suppressions
with their reasons, deferral streaks, and engagement recorded per email. No shop's event
reaches another shop's email or customer."""

from __future__ import annotations

import time

import pytest

from tests.webhooks.conftest import Webhook, event, utc


async def test_custom_args_name_the_email(webhook: Webhook) -> None:
    webhook.customer()
    email_id = webhook.email()
    await webhook.post([event("open", email_id=str(email_id), shop_id=webhook.shop_id)])

    [recorded] = webhook.events()[-1:]
    assert (recorded.email_send_id, recorded.customer_id) == (email_id, "c-42")


async def test_without_custom_args_the_message_id_names_the_email(webhook: Webhook) -> None:
    webhook.customer()
    email_id = webhook.email(message_id=f"msg{email_id_suffix()}")
    message = webhook.row(email_id).provider_message_id
    await webhook.post([event("delivered", sg_message_id=f"{message}.filterdrecv-1.2.3")])

    assert webhook.events()[-1].email_send_id == email_id


async def test_without_either_the_address_names_the_customer_of_the_shop(
    webhook: Webhook,
) -> None:
    webhook.customer(email="ana.b@example.com")
    await webhook.post([event("bounce", type="bounce", email="ANA.B@example.com",
                              shop_id=webhook.shop_id)])

    assert webhook.events()[-1].customer_id == "c-42"
    assert webhook.suppression().reason == "bounce"


@pytest.mark.parametrize("category", [
    "shop:{shop}", ["day_1", "shop:{shop}"],
])
async def test_without_custom_args_the_shops_category_and_the_address_name_the_customer(
    webhook: Webhook, category: str | list[str],
) -> None:
    """A bounce SendGrid posts without our custom args still carries the send's categories."""
    webhook.customer(email="ana.c@example.com")
    named = ([c.format(shop=webhook.shop_id) for c in category] if isinstance(category, list)
             else category.format(shop=webhook.shop_id))
    await webhook.post([event("bounce", type="bounce", email="Ana.C@example.com",
                              category=named)])

    assert webhook.events()[-1].customer_id == "c-42"
    assert webhook.suppression().reason == "bounce"


@pytest.mark.parametrize("category", [
    None, "day_1", ["shop:{shop}", "shop:{shop}-other"], 7, {"shop": "{shop}"},
])
async def test_an_address_without_a_shop_suppresses_no_one(
    webhook: Webhook, category: object,
) -> None:
    """Neither custom args, nor a message id we sent, nor one shop's category: which shop's
    customer it is cannot be told, and one shop's event never reaches another's customer (that
    shop's own send to the address brings its own bounce)."""
    fields = {} if category is None else {"category": (
        [c.format(shop=webhook.shop_id) for c in category] if isinstance(category, list)
        else category.format(shop=webhook.shop_id) if isinstance(category, str) else category
    )}
    webhook.customer(email="lost@example.com")
    webhook.customer(shop_id=f"{webhook.shop_id}-other", email="lost@example.com")
    response = await webhook.post([event("bounce", type="bounce", email="lost@example.com",
                                         **fields)])

    assert response.status_code == 200  # kept, unmapped: a category is never a reason to refuse
    assert webhook.events()[-1].customer_id is None
    assert webhook.suppression() is None
    assert webhook.suppression(shop_id=f"{webhook.shop_id}-other") is None


async def test_another_shops_email_id_is_not_this_shops_event(webhook: Webhook) -> None:
    other = f"{webhook.shop_id}-other"
    webhook.customer()
    webhook.customer(shop_id=other)
    theirs = webhook.email(shop_id=other)
    await webhook.post([event("spamreport", email_id=str(theirs), shop_id=webhook.shop_id)])

    assert webhook.events()[-1].email_send_id is None
    assert webhook.suppression(shop_id=other) is None
    assert webhook.suppression() is None


async def test_processed_confirms_a_send_still_sending(webhook: Webhook) -> None:
    webhook.customer()
    email_id = webhook.email(status="sending")
    at = int(time.time()) - 30
    await webhook.post([
        event("delivered", email_id=str(email_id), shop_id=webhook.shop_id, timestamp=at + 5,
              sg_message_id="later.x"),
        event("processed", email_id=str(email_id), shop_id=webhook.shop_id, timestamp=at,
              sg_message_id="XMSG-1.filterdrecv-66.1"),
    ])

    row = webhook.row(email_id)
    assert (row.status, row.sent_at, row.provider, row.provider_message_id) == (
        "sent", utc(at), "sendgrid", "XMSG-1")


async def test_a_confirmation_keeps_the_message_id_the_send_recorded(webhook: Webhook) -> None:
    webhook.customer()
    email_id = webhook.email(status="sending", message_id=f"own{email_id_suffix()}")
    before = webhook.row(email_id).provider_message_id
    await webhook.post([event("delivered", email_id=str(email_id), shop_id=webhook.shop_id,
                              sg_message_id="other.x")])

    assert (webhook.row(email_id).status, webhook.row(email_id).provider_message_id) == (
        "sent", before)


@pytest.mark.parametrize("status", ["sent", "failing", "skipped"])
async def test_a_confirmation_changes_no_row_that_is_not_sending(
    webhook: Webhook, status: str
) -> None:
    webhook.customer()
    email_id = webhook.email(status=status)
    await webhook.post([event("processed", email_id=str(email_id), shop_id=webhook.shop_id)])

    row = webhook.row(email_id)
    assert (row.status, row.sent_at, row.provider) == (status, None, None)


SUPPRESSING = {
    "hard_bounce": (dict(event="bounce", type="bounce"), "bounce"),
    "bounce_without_type": (dict(event="bounce"), "bounce"),
    "dropped_invalid": (dict(event="dropped", reason="Invalid"), "dropped"),
    "dropped_bounced_address": (dict(event="dropped", reason="Bounced Address"), "dropped"),
    "dropped_spam_reporting": (dict(event="dropped", reason="Spam Reporting Address"),
                               "spamreport"),
    "spamreport": (dict(event="spamreport"), "spamreport"),
    "unsubscribe": (dict(event="unsubscribe"), "unsubscribe"),
    "group_unsubscribe": (dict(event="group_unsubscribe", asm_group_id=3), "group_unsubscribe"),
}


@pytest.mark.parametrize(("fields", "reason"), SUPPRESSING.values(), ids=SUPPRESSING.keys())
async def test_each_suppressing_event_suppresses_with_its_reason(
    webhook: Webhook, fields: dict[str, object], reason: str
) -> None:
    webhook.customer()
    email_id = webhook.email()
    fields = dict(fields)
    ev = event(str(fields.pop("event")), email_id=str(email_id), shop_id=webhook.shop_id,
               **fields)
    await webhook.post([ev])

    suppression = webhook.suppression()
    assert suppression is not None
    assert (suppression.reason, suppression.sg_event_id) == (reason, ev["sg_event_id"])


NOT_SUPPRESSING = {
    "blocked_bounce": dict(event="bounce", type="blocked"),
    "dropped_spam_content": dict(event="dropped", reason="Spam Content"),
    "delivered": dict(event="delivered"),
    "open": dict(event="open"),
    "click": dict(event="click", url="https://shop.example/?e=ana@example.com"),
    "one_deferral": dict(event="deferred", attempt="1"),
}


@pytest.mark.parametrize("fields", NOT_SUPPRESSING.values(), ids=NOT_SUPPRESSING.keys())
async def test_other_events_do_not_suppress(webhook: Webhook, fields: dict[str, object]) -> None:
    webhook.customer()
    email_id = webhook.email()
    fields = dict(fields)
    await webhook.post([event(str(fields.pop("event")), email_id=str(email_id),
                              shop_id=webhook.shop_id, **fields)])

    suppression = webhook.suppression()
    assert suppression is None or suppression.reason is None
    assert webhook.events()[-1].email_send_id == email_id


async def test_seven_deferrals_in_a_row_suppress_six_do_not(webhook: Webhook) -> None:
    webhook.customer()
    email_id = webhook.email()
    now = int(time.time())

    def deferral(i: int, kind: str = "deferred") -> dict[str, object]:
        return event(kind, email_id=str(email_id), shop_id=webhook.shop_id, timestamp=now + i)

    await webhook.post([deferral(i) for i in range(5)] + [deferral(5, "blocked")])
    assert (webhook.suppression().reason, webhook.suppression().deferrals_in_a_row) == (None, 6)

    await webhook.post([deferral(6)])
    assert (webhook.suppression().reason, webhook.suppression().deferrals_in_a_row) == (
        "deferred", 7)


async def test_a_delivery_ends_the_row_of_deferrals(webhook: Webhook) -> None:
    webhook.customer()
    email_id = webhook.email()
    now = int(time.time())
    args = {"email_id": str(email_id), "shop_id": webhook.shop_id}
    await webhook.post([event("deferred", timestamp=now + i, **args) for i in range(6)]
                       + [event("delivered", timestamp=now + 6, **args)])
    await webhook.post([event("deferred", timestamp=now + 7, **args)])

    assert (webhook.suppression().reason, webhook.suppression().deferrals_in_a_row) == (None, 1)


async def test_a_spam_report_is_not_replaced_by_a_later_bounce(webhook: Webhook) -> None:
    webhook.customer()
    args = {"email_id": str(webhook.email()), "shop_id": webhook.shop_id}
    now = int(time.time())
    await webhook.post([event("spamreport", timestamp=now, **args),
                        event("bounce", type="bounce", timestamp=now + 1, **args)])

    assert webhook.suppression().reason == "spamreport"


async def test_engagement_is_recorded_per_email_without_personal_data(webhook: Webhook) -> None:
    webhook.customer()
    email_id = webhook.email()
    args = {"email_id": str(email_id), "shop_id": webhook.shop_id}
    await webhook.post([event("delivered", **args), event("open", **args),
                        event("click", url="https://x.example/?e=ana@example.com", **args),
                        event("bounce", reason="550 ana@example.com unknown", type="bounce",
                              status="5.1.1", **args)])

    mine = [e for e in webhook.events() if e.email_send_id == email_id]
    assert [e.event for e in mine] == ["delivered", "open", "click", "bounce"]
    assert "ana" not in repr([(e.detail, e.sg_message_id) for e in mine])
    assert mine[-1].detail == {"type": "bounce", "status": "5.1.1"}


def email_id_suffix() -> str:
    return str(time.time_ns())
