"""The loop closed on a real lifecycle: the link in the email's List-Unsubscribe header (kept
in the outbox) is POSTed as a mail client would, and the next email is skipped, audited as the
customer's own action and shown by `inspect`; the referral prompt links the tracked `/r/`."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlalchemy import select

from database.models import Customer, EmailSend
from intake.timeline import inspect_lifecycle
from tests.public.conftest import Public


def sent(emails: list[EmailSend]) -> list[str]:
    return [e.step for e in emails if e.status == "sent"]


async def test_an_unsubscribe_by_the_emails_own_header_stops_the_next_email(
    public: Public,
) -> None:
    kit = public.kit
    handle = await kit.buy(await kit.placed_now("8101"))
    await kit.skip(3)
    [day_1] = kit.outbox(handle.id)
    assert day_1.headers is not None
    assert day_1.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    found = re.fullmatch(r"<(https://[^>]+)>", day_1.headers["List-Unsubscribe"])
    assert found is not None
    link = found.group(1)
    assert link.startswith(f"{kit.settings.public_url}/u/{kit.shop_id}/c-42?token=")
    assert link in day_1.text and link in day_1.html  # the footer's link is the header's

    parts = urlsplit(link)
    response = await public.http.post(f"{parts.path}?{parts.query}",
                                      content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    summary = await handle.result()

    assert sent(kit.emails(handle.id)) == ["day_1"]
    assert summary.emails_skipped == {"unsubscribed": 3}
    record = await inspect_lifecycle(kit.sessions, kit.client, kit.shop_id, "8101")
    assert record is not None and record["unsubscribed_at"] is not None
    assert [(u["by"], "own unsubscribe" in u["reason"]) for u in record["unsubscribes"]] == [
        ("customer", True)]


async def test_the_referral_prompt_links_the_tracked_referral_link(public: Public) -> None:
    kit = public.kit
    handle = await kit.buy(await kit.placed_now("8201"))
    await handle.result()
    with kit.sessions() as session:
        code = session.scalar(select(Customer.referral_code).where(
            Customer.shop_id == kit.shop_id, Customer.customer_id == "c-42"))
    assert code
    prompt = next(m for m in kit.outbox(handle.id) if code in m.text)
    tracked = f"{kit.settings.public_url}/r/{code}?shop={kit.shop_id}"
    assert f'href="{tracked}"' in prompt.html and tracked in prompt.text
    link = urlsplit(tracked)
    response = await public.http.get(f"{link.path}?{link.query}")
    assert response.status_code == 302 and response.headers["location"].endswith(f"ref={code}")


async def test_a_resubscribe_on_the_page_lets_the_next_email_go_and_inspect_shows_both(
    public: Public,
) -> None:
    kit = public.kit
    handle = await kit.buy(await kit.placed_now("8301"))
    await kit.skip(3)
    form = {"headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    await public.http.post(public.link(), content=b"List-Unsubscribe=One-Click&via=page", **form)
    await kit.skip(5)
    await public.http.post(public.link(), content=b"List-Unsubscribe=Resubscribe&via=page",
                           **form)
    await handle.result()

    assert sent(kit.emails(handle.id)) == ["day_1", "day_21"]
    record = await inspect_lifecycle(kit.sessions, kit.client, kit.shop_id, "8301")
    assert record is not None and record["unsubscribed_at"] is None
    assert [u["by"] for u in record["unsubscribes"]] == ["customer"]
    assert [(u["by"], u["reason"]) for u in record["resubscribes"]] == [
        ("customer", "the customer's own resubscribe, by the unsubscribe page")]
    assert "the unsubscribe page" in record["unsubscribes"][0]["reason"]
