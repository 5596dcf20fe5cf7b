"""`GET /templates/{name}/preview`: a marketer's browser view of what a step's email looks like
for a sample purchase, read from the templates folder at each request so an edit shows at
the next reload. `POST` the same path with a purchase event to preview that customer's email.

Only sample or posted data is shown, and unsubscribe links carry a preview-only token.

A preview needs a shop's key: `Authorization: Bearer <key>` from a tool, or, from a browser, the
shop id and key in the sign-in box it shows for a Basic challenge; a posted purchase must be that
shop's. Under `loyalloop dev` only (`dev=True`: the intake listens on 127.0.0.1, with demo data)
previews open without one, so a marketer can just reload the page.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from intake.auth import BEARER_CHALLENGE, ShopKeys, require_shop
from intake.errors import EventRejected
from intake.responses import error_response
from messages.preview import (
    CONTENT_SECURITY_POLICY,
    PREVIEW_SECRET,
    preview_page,
    problem_page,
    render_preview,
)
from messages.render import TemplateProblem, TemplateRenderer
from messages.samples import SAMPLES, LinkSigning, with_sku_first
from shop_events.schemas import LOCALE, PurchaseEvent, describe_errors

STEP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_BODY_BYTES = 256 * 1024
FIRST_SAMPLE = next(iter(SAMPLES))
BASIC_CHALLENGE = 'Basic realm="Loyalloop template previews: your shop id and key", charset="UTF-8"'


def make_preview_router(
    renderer_factory: Callable[[], TemplateRenderer],
    public_url: str = "https://loyalloop.example",
    *,
    keys: ShopKeys | None = None,
    dev: bool = False,
) -> APIRouter:
    """Without `keys` and outside `dev`, every preview is refused: the safe way to be wrong."""
    router = APIRouter(tags=["templates"])
    signing = LinkSigning(public_url, PREVIEW_SECRET)
    shop_keys = keys or ShopKeys({})

    def signed_in(request: Request) -> str | None:
        """The shop previewing (None in dev); raises EventRejected (401) without its key."""
        return None if dev else shop_of(shop_keys, request.headers.get("authorization"))

    @router.get("/templates/{name}/preview", response_class=HTMLResponse)
    def preview_sample(
        name: str,
        request: Request,
        sample: Annotated[str, Query(description="one of the sample purchases")] = FIRST_SAMPLE,
        locale: Annotated[str | None, Query(description="the customer's locale: pt, pt-BR")] = None,
        sku: Annotated[list[str] | None, Query(description="a product bought (repeatable)")] = None,
        format: Annotated[str, Query(pattern="^(html|json)$")] = "html",
    ) -> Response:
        """The step's email for a sample purchase; `sku` and `locale` pick the override."""
        try:
            signed_in(request)
        except EventRejected as refused:
            return _refused(refused)
        if sample not in SAMPLES:
            return _invalid("sample", f"unknown sample; known: {', '.join(SAMPLES)}")
        purchase = SAMPLES[sample]
        for one in reversed(sku or []):
            try:
                purchase = with_sku_first(purchase, one)
            except ValidationError:
                return _invalid("sku", f"{one!r} is not a valid SKU")
        return _preview(renderer_factory(), signing, name, purchase, locale, f"sample {sample}",
                        format)

    @router.post("/templates/{name}/preview", response_class=HTMLResponse)
    async def preview_purchase(
        name: str, request: Request, locale: str | None = None,
        format: Annotated[str, Query(pattern="^(html|json)$")] = "html",
    ) -> Response:
        """The step's email for the purchase event in the body."""
        try:
            shop = signed_in(request)
        except EventRejected as refused:
            return _refused(refused)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _invalid("body", f"larger than {MAX_BODY_BYTES} bytes", status=413)
        try:
            purchase = PurchaseEvent.model_validate_json(body)
        except ValidationError as error:
            return JSONResponse({"error": "invalid event", "problems": describe_errors(error)},
                                status_code=422)
        if shop is not None:
            try:
                require_shop(shop, purchase.shop_id)
            except EventRejected as refused:
                return _refused(refused)
        label = f"order {purchase.order_id} of {purchase.shop_id}"
        return _preview(renderer_factory(), signing, name, purchase, locale, label, format)

    return router


def _preview(
    renderer: TemplateRenderer, signing: LinkSigning, name: str, purchase: PurchaseEvent,
    locale: str | None, label: str, format: str,
) -> Response:
    if locale is not None and not LOCALE.match(locale):
        return _invalid("locale", "must be a language tag such as en, pt or pt-BR")
    if not STEP.match(name) or name not in renderer.steps():
        return _invalid("name", f"no template step {name!r}", status=404)
    try:
        rendered = render_preview(renderer, name, purchase, signing, locale=locale)
    except TemplateProblem as problem:
        if format == "json":
            return JSONResponse({"error": "template does not render", "problems": [
                {"field": f"{problem.file}:{problem.line or ''}".rstrip(":"),
                 "problem": problem.problem}]}, status_code=422)
        return _html(problem_page(name, problem), 422)
    if format == "json":
        return JSONResponse({
            "template_name": rendered.template_name, "template_hash": rendered.template_hash,
            "subject": rendered.subject, "text": rendered.text, "html": rendered.html,
        })
    return _html(preview_page(rendered, step=name, purchase_label=label), 200)


def shop_of(keys: ShopKeys, authorization: str | None) -> str:
    """A Bearer key, or a browser's Basic sign-in whose user is the shop whose key it gives."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return keys.shop_for(authorization)
    try:
        user, _, key = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise EventRejected(401, "Authorization", "is not valid Basic credentials") from None
    shop = keys.shop_for(f"Bearer {key}")
    if not hmac.compare_digest(shop.encode(), user.encode()):
        raise EventRejected(401, "Authorization", "the key is not the key of that shop")
    return shop


def _refused(error: EventRejected) -> Response:
    """The intake's error, with a Basic challenge beside the Bearer one so a browser asks."""
    response = error_response(error)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = BEARER_CHALLENGE["WWW-Authenticate"]
        response.headers.append("WWW-Authenticate", BASIC_CHALLENGE)
    return response


def _html(page: str, status: int) -> HTMLResponse:
    return HTMLResponse(page, status_code=status, headers={
        "Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    })


def _invalid(field: str, problem: str, status: int = 422) -> JSONResponse:
    """The intake's one error shape: {"error": ..., "problems": [{field, problem}]}."""
    title = {404: "not found", 413: "body too large"}.get(status, "invalid request")
    return JSONResponse({"error": title, "problems": [{"field": field, "problem": problem}]},
                        status_code=status)
