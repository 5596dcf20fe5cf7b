"""Every kind of request the SendGrid sender makes, checked against SendGrid's own OpenAPI
description of Mail Send by Prism (`--errors`: a request breaking the contract gets a 4xx)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import sendgrid
from python_http_client import HTTPError

from messages.senders import MAX_CATEGORIES, MAX_CATEGORY_LENGTH, Message, SendError, SendGridSender

BASE = Message(
    to_email="ana@example.com",
    to_name="Ana",
    from_email="Acme Coffee <hello@acme.example>",
    subject="Setting up your kettle",
    html="<p>Hi Ana</p>",
    text="Hi Ana",
    idempotency_key="purchase-acme-1001/day_1",
    categories=("day_1", "shop:acme"),
)


def variant(**changes: Any) -> Message:
    return replace(BASE, **changes)


LONG_HTML = (
    "<table>"
    + "".join(
        f"<tr><td>Item {i} — Pour-over kettle «{i}»</td><td>€{i}.00</td></tr>" for i in range(200)
    )
    + "</table>"
)
LONG_TEXT = "\n".join(f"- Item {i}: Pour-over kettle, €{i}.00" for i in range(200))

ACCEPTED = {
    "plain": BASE,
    "unicode_name_and_subject": variant(
        to_name="Ana Ñúñez 😀", subject="Olá Ana Ñúñez 😀 — your kettle"
    ),
    "japanese": variant(
        to_name="山田 花子",
        subject="ご購入ありがとうございます",
        text="こんにちは、花子さん。",
        html="<p>こんにちは、花子さん。</p>",
    ),
    "no_name": variant(to_name=None),
    "long_body_200_items": variant(html=LONG_HTML, text=LONG_TEXT),
    "html_only": variant(text=""),
    "text_only": variant(html=""),
    "no_categories": variant(categories=()),
    "too_many_categories": variant(categories=tuple(f"c{i}" for i in range(MAX_CATEGORIES + 5))),
    "duplicate_categories": variant(categories=("day_1", "day_1", "shop:acme", "shop:acme")),
    "long_category": variant(categories=("x" * (MAX_CATEGORY_LENGTH + 100),)),
    "non_ascii_and_blank_categories": variant(categories=("shop:café", "ショップ", " ", "")),
    "long_idempotency_key": variant(idempotency_key="purchase-" + "a" * 280 + "/referral_prompt"),
}


@pytest.mark.parametrize("message", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_sendgrid_accepts_what_the_sender_sends(prism_url: str, message: Message) -> None:
    message_id = SendGridSender("SG.contract-test", host=prism_url).send(None, 0, message)

    # Prism's 202 carries no X-Message-Id (the description declares no headers).
    assert message_id == message.idempotency_key


def test_an_address_that_is_not_an_email_breaks_the_contract(prism_url: str) -> None:
    with pytest.raises(SendError) as raised:
        SendGridSender("SG.contract-test", host=prism_url).send(
            None, 1, variant(to_email="not-an-email", to_name="Ana")
        )

    assert (raised.value.retryable, raised.value.status) == (False, 400)


def raw_body(**changes: object) -> dict[str, object]:
    return {
        "personalizations": [{"to": [{"email": "ana@example.com"}]}],
        "from": {"email": "hello@acme.example"},
        "subject": "Hi",
        "content": [{"type": "text/plain", "value": "Hi"}],
        **changes,
    }


BROKEN = {
    # Why the idempotency key rides in the personalization: at the top level the contract wants
    # a string, and the official helper would send an object there.
    "top_level_custom_args_object": (raw_body(custom_args={"idempotency_key": "k"}), "custom_args"),
    "eleven_categories": (raw_body(categories=[f"c{i}" for i in range(11)]), "categories"),
    "duplicate_categories": (raw_body(categories=["day_1", "day_1"]), "categories"),
    "category_of_256": (raw_body(categories=["x" * 256]), "categories"),
    "empty_content_value": (raw_body(content=[{"type": "text/plain", "value": ""}]), "content"),
    "empty_subject": (raw_body(subject=""), "subject"),
}


@pytest.mark.parametrize(("body", "field"), BROKEN.values(), ids=BROKEN.keys())
def test_what_the_sender_avoids_breaks_the_contract(
    prism_url: str, body: dict[str, object], field: str
) -> None:
    client = sendgrid.SendGridAPIClient("SG.contract-test", host=prism_url)

    with pytest.raises(HTTPError) as raised:
        client.send(body)

    assert raised.value.status_code == 400
    violations = json.loads(raised.value.headers["sl-violations"])
    assert {tuple(v["location"][:3]) for v in violations} == {("request", "body", field)}


def test_a_request_without_the_api_key_is_refused(prism_url: str) -> None:
    client = sendgrid.SendGridAPIClient("unused", host=prism_url)
    del client.client.request_headers["Authorization"]

    with pytest.raises(HTTPError) as raised:
        client.send(
            {
                "personalizations": [{"to": [{"email": "ana@example.com"}]}],
                "from": {"email": "hello@acme.example"},
            }
        )

    assert raised.value.status_code == 401
