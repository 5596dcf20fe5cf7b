"""The public pages, for customers and their friends rather than shops: the unsubscribe link
of every marketing email (`/u/{shop}/{customer}?token=…`) and the tracked referral link
(`/r/{code}`).

`POST /u/…` is RFC 8058's one-click unsubscribe, which a mail client sends with the body
`List-Unsubscribe=One-Click` and no cookie, so it acts at once. `GET /u/…` only shows a page with
the button, since link scanners fetch every link in an email. The token is checked before
anything is read, and every refused token gets the same page, so no answer says whether a
customer exists.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from intake import clicks, pages, subscription
from intake.service import LifecycleService
from messages.links import verify_link_token
from messages.render import TemplateProblem, TemplateRenderer
from settings import Settings
from shop_events.schemas import ID

FIELD = "List-Unsubscribe"
ONE_CLICK, RESUBSCRIBE = "One-Click", "Resubscribe"
MULTIPART_FIELD = re.compile(rb'name="List-Unsubscribe"\r\n(?:[^\r\n]*\r\n)*?\r\n([^\r\n]*)')
MAX_CODE = 64


def make_public_router(settings: Settings, service: LifecycleService) -> APIRouter:
    router = APIRouter(tags=["public"], include_in_schema=False)
    secret = settings.link_secret.get_secret_value()
    sessions = service.sessions

    def shop_config(shop_id: str) -> dict[str, object]:
        try:
            return TemplateRenderer(settings.templates_dir).shop(shop_id)
        except TemplateProblem:  # a broken shops.json must not hide the unsubscribe page
            return {"id": shop_id, "name": shop_id}

    def signed(shop_id: str, customer_id: str, request: Request) -> str | None:
        """The link's token if it is this customer's: exactly one, and the right one."""
        tokens = request.query_params.getlist("token")
        valid = len(tokens) == 1 and verify_link_token(secret, shop_id, customer_id, tokens[0])
        return tokens[0] if valid else None

    def action(shop_id: str, customer_id: str, token: str) -> str:
        return f"/u/{quote(shop_id)}/{quote(customer_id)}?token={quote(token)}"

    @router.get("/u/{shop_id}/{customer_id}", response_class=HTMLResponse)
    async def unsubscribe_page(shop_id: str, customer_id: str, request: Request) -> Response:
        if (token := signed(shop_id, customer_id, request)) is None:
            return pages.invalid_link_page()
        here, shop = action(shop_id, customer_id, token), shop_config(shop_id)
        done = await asyncio.to_thread(
            subscription.is_unsubscribed, sessions, shop_id, customer_id)
        return pages.unsubscribed_page(shop, here) if done else pages.confirm_page(shop, here)

    @router.post("/u/{shop_id}/{customer_id}", response_class=HTMLResponse)
    async def one_click(shop_id: str, customer_id: str, request: Request) -> Response:
        if (token := signed(shop_id, customer_id, request)) is None:
            return pages.invalid_link_page()
        body = await request.body()
        wanted = _requested(request.headers.get("content-type", ""), body)
        if wanted is None:
            return pages.page("Not understood", f"<p>The form field {FIELD} must be "
                              f"{ONE_CLICK} or {RESUBSCRIBE}.</p>", status=400)
        here, shop = action(shop_id, customer_id, token), shop_config(shop_id)
        if wanted == RESUBSCRIBE:
            await asyncio.to_thread(subscription.resubscribe, sessions, shop_id, customer_id)
            return pages.resubscribed_page(shop, here)
        via = "the unsubscribe page" if _from_page(body) else "one-click (RFC 8058)"
        change = await asyncio.to_thread(
            subscription.unsubscribe, sessions, shop_id, customer_id, via)
        if change.changed:
            await subscription.tell_lifecycles(service.client, change.workflow_ids)
        return pages.unsubscribed_page(shop, here)

    @router.get("/r/{code}")
    async def referral(code: str, shop: Annotated[str | None, Query()] = None) -> Response:
        """A creator's code names no shop, so its links carry `?shop=`; an unknown code goes
        to the shop it names, recording nothing."""
        named = shop if shop is not None and ID.match(shop) and _configured(shop) else None
        referrer = (await asyncio.to_thread(clicks.find_referrer, sessions, code)
                    if ID.match(code) and len(code) <= MAX_CODE else None)
        target_shop = (referrer.shop_id if referrer else None) or named
        if target_shop is None:
            return pages.not_found_page()
        config = shop_config(target_shop)
        url = str(config.get("url") or "")
        if referrer is None:
            return _redirect(url)
        await asyncio.to_thread(clicks.record_click, sessions, referrer, target_shop)
        param = str(config.get("referral_param") or settings.referral_param)
        return _redirect(clicks.with_code(url, param, referrer.code))

    def _configured(shop_id: str) -> bool:
        """A shop of shops.json's own (the `default` entry stands in for unknown ones)."""
        try:
            shops = json.loads((settings.templates_dir / "shops.json").read_text())
        except (OSError, ValueError):
            return False
        return isinstance(shops, dict) and shop_id != "default" and shop_id in shops

    return router


def _requested(content_type: str, body: bytes) -> str | None:
    """What the POST asks: RFC 8058's `List-Unsubscribe=One-Click` (form-urlencoded or
    multipart, as the RFC allows), the page's resubscribe button, or, with no body at all, an
    unsubscribe (the customer's intent is plain). Anything else is None."""
    if not body.strip():
        return ONE_CLICK
    if content_type.startswith("multipart/form-data"):
        found = MULTIPART_FIELD.search(body)
        values = [found.group(1).decode("utf-8", "replace")] if found else []
    else:
        values = parse_qs(body.decode("utf-8", "replace")).get(FIELD, [])
    return values[0] if len(values) == 1 and values[0] in (ONE_CLICK, RESUBSCRIBE) else None


def _from_page(body: bytes) -> bool:
    return parse_qs(body.decode("utf-8", "replace")).get("via") == ["page"]


def _redirect(url: str) -> Response:
    return RedirectResponse(url, 302, headers={"Cache-Control": "no-store",
                                               "Referrer-Policy": "no-referrer"})
