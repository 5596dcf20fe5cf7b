"""`/u/{shop}/{customer}?token=…` over HTTP on both databases: every token class and method,
the one-click POST of RFC 8058, the page's confirm and resubscribe, and what is recorded."""

from __future__ import annotations

import pytest

from tests.public.conftest import BRAND, Public

MULTIPART = (b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
             b"One-Click\r\n--b--\r\n")
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


def token_classes(public: Public, customer_id: str) -> dict[str, str]:
    """Each way a link can be wrong, for `customer_id` of this shop."""
    good = public.link(customer_id)
    path, token = good.split("?token=")
    return {
        "missing": path,
        "empty": f"{path}?token=",
        "truncated": f"{path}?token={token[:-1]}",
        "one_char_wrong": f"{path}?token={token[:-1]}{'0' if token[-1] != '0' else '1'}",
        "another_customers": f"{path}?token={public.link('c-other').split('?token=')[1]}",
        "another_shops": f"{path}?token={public.link(customer_id, 'other-shop').split('=')[1]}",
        "longer": f"{path}?token={token}00",
        "not_hex": f"{path}?token={'é' * len(token)}",
        "repeated_param": f"{path}?token=wrong&token={token}",
        "repeated_param_right_first": f"{path}?token={token}&token=wrong",
        "repeated_right_param": f"{path}?token={token}&token={token}",
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_every_bad_token_is_the_same_403_whether_or_not_the_customer_exists(
    public: Public, method: str
) -> None:
    public.customer("c-42")
    before = public.counts()
    answers = set()
    for customer_id in ("c-42", "c-nobody"):
        for name, url in token_classes(public, customer_id).items():
            response = await public.http.request(method, url, **ONE_CLICK)
            assert response.status_code == 403, (name, customer_id, response.text)
            answers.add((response.status_code, response.text, response.headers["content-type"]))
    assert len(answers) == 1, "the answer must not tell an existing customer from none"
    assert "not valid" in next(iter(answers))[1]
    assert public.counts() == before and public.unsubscribed_at("c-42") is None


async def test_get_shows_the_shops_page_with_one_button_and_never_unsubscribes(
    public: Public
) -> None:
    public.customer("c-42")
    for _ in range(3):  # a link scanner prefetching
        response = await public.http.get(public.link())
        assert response.status_code == 200
    html = response.text
    assert "Ana&#x27;s Kettles" in html and BRAND in html
    assert html.count("<form") == 1 and html.count("<button") == 1
    assert f'action="{public.link().replace("&", "&amp;")}"' in html
    assert "<script" not in html
    assert response.headers["referrer-policy"] == "no-referrer"
    assert public.unsubscribed_at() is None and public.audit() == []


async def test_one_click_post_unsubscribes_at_once_and_a_repeat_changes_nothing(
    public: Public
) -> None:
    public.customer("c-42")
    first = await public.http.post(public.link(), **ONE_CLICK)
    assert first.status_code == 200 and "You are unsubscribed" in first.text
    assert "set-cookie" not in first.headers
    at = public.unsubscribed_at()
    assert at is not None
    assert public.audit() == [("customer", "unsubscribe", "c-42")]

    again = await public.http.post(public.link(), **ONE_CLICK)
    assert again.status_code == 200
    assert public.unsubscribed_at() == at and len(public.audit()) == 1
    page = await public.http.get(public.link())
    assert "You are unsubscribed" in page.text and "Resubscribe" in page.text


@pytest.mark.parametrize("body,content_type", [
    (b"", "application/x-www-form-urlencoded"),
    (b"List-Unsubscribe=One-Click&via=page", "application/x-www-form-urlencoded"),
    (MULTIPART, "multipart/form-data; boundary=b"),
])
async def test_each_form_of_the_one_click_body_unsubscribes(
    public: Public, body: bytes, content_type: str
) -> None:
    public.customer("c-42")
    response = await public.http.post(public.link(), content=body,
                                      headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert public.unsubscribed_at() is not None


@pytest.mark.parametrize("body", [b"List-Unsubscribe=Yes", b"List-Unsubscribe=One-Click"
                                  b"&List-Unsubscribe=Resubscribe", b"other=1"])
async def test_a_body_asking_for_nothing_known_is_a_400_naming_the_field(
    public: Public, body: bytes
) -> None:
    public.customer("c-42")
    before = public.counts()
    response = await public.http.post(public.link(), content=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and "List-Unsubscribe" in response.text
    assert public.counts() == before and public.unsubscribed_at() is None


async def test_resubscribe_by_the_customers_own_action_with_the_same_token(
    public: Public
) -> None:
    public.customer("c-42")
    await public.http.post(public.link(), **ONE_CLICK)
    response = await public.http.post(public.link(), content=b"List-Unsubscribe=Resubscribe",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and "You are subscribed" in response.text
    assert public.unsubscribed_at() is None
    assert public.audit() == [("customer", "unsubscribe", "c-42"),
                              ("customer", "resubscribe", "c-42")]
    again = await public.http.post(public.link(), content=b"List-Unsubscribe=Resubscribe",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert again.status_code == 200 and len(public.audit()) == 2


async def test_a_valid_link_of_a_customer_not_yet_stored_is_remembered(public: Public) -> None:
    """As the shop's unsubscribe API does: their first purchase finds them unsubscribed."""
    response = await public.http.post(public.link("c-early"), **ONE_CLICK)
    assert response.status_code == 200
    assert public.unsubscribed_at("c-early") is not None


async def test_ids_with_reserved_characters_round_trip(public: Public) -> None:
    public.customer("a:b@c.d")
    response = await public.http.post(public.link("a:b@c.d"), **ONE_CLICK)
    assert response.status_code == 200
    assert public.unsubscribed_at("a:b@c.d") is not None
