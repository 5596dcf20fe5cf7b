"""The small HTML pages customers see: the unsubscribe page (confirm, done, resubscribed), a
refused link, and a referral link that leads nowhere.

Plain HTML forms, no script: they work with JavaScript off. Every value is escaped, and a shop's
colours are used only when they are colours (shops.json is edited by hand). The headers keep the
link's token out of referrers, caches and search indexes.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

from fastapi.responses import HTMLResponse

COLOUR = re.compile(r"^#[0-9A-Fa-f]{3}(?:[0-9A-Fa-f]{3})?$")
DEFAULT_BRAND = "#222222"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
}


def colour(shop: dict[str, Any], name: str, default: str) -> str:
    value = (shop.get("colors") or {}).get(name) if isinstance(shop.get("colors"), dict) else None
    return value if isinstance(value, str) and COLOUR.match(value) else default


def page(title: str, body: str, *, shop: dict[str, Any] | None = None,
         status: int = 200) -> HTMLResponse:
    shop = shop or {}
    brand = colour(shop, "brand", DEFAULT_BRAND)
    background = colour(shop, "background", "#ffffff")
    name = escape(str(shop.get("name") or ""))
    header = f'<header style="font-weight:bold;color:{brand}">{name}</header>' if name else ""
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; background: {background}; color: #222;
       max-width: 32rem; margin: 3rem auto; padding: 0 1rem; }}
header {{ font-size: 1.25rem; padding-bottom: .75rem; border-bottom: 3px solid {brand}; }}
button {{ background: {brand}; color: #fff; border: 0; border-radius: 4px; font-size: 1rem;
         padding: .6rem 1.2rem; cursor: pointer; }}
button.quiet {{ background: transparent; color: {brand}; border: 1px solid {brand}; }}
</style></head>
<body>{header}<main><h1>{escape(title)}</h1>{body}</main></body></html>
"""
    return HTMLResponse(html, status, headers=HEADERS)


def _form(action: str, value: str, label: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return (f'<form method="post" action="{escape(action)}">'
            f'<input type="hidden" name="List-Unsubscribe" value="{escape(value)}">'
            '<input type="hidden" name="via" value="page">'
            f'<button type="submit"{cls}>{escape(label)}</button></form>')


def confirm_page(shop: dict[str, Any], action: str) -> HTMLResponse:
    """A GET never unsubscribes (link scanners prefetch links): it asks."""
    name = escape(str(shop.get("name") or "this shop"))
    body = (f"<p>Stop receiving marketing emails from {name}?</p>"
            + _form(action, "One-Click", "Unsubscribe"))
    return page("Unsubscribe", body, shop=shop)


def unsubscribed_page(shop: dict[str, Any], action: str) -> HTMLResponse:
    name = escape(str(shop.get("name") or "this shop"))
    body = (f"<p>{name} will send you no more marketing emails. "
            "Order and receipt emails from the shop itself are not affected.</p>"
            "<p>Changed your mind?</p>"
            + _form(action, "Resubscribe", "Resubscribe", "quiet"))
    return page("You are unsubscribed", body, shop=shop)


def resubscribed_page(shop: dict[str, Any], action: str) -> HTMLResponse:
    name = escape(str(shop.get("name") or "this shop"))
    body = (f"<p>Welcome back: {name} may email you again.</p>"
            + _form(action, "One-Click", "Unsubscribe", "quiet"))
    return page("You are subscribed", body, shop=shop)


def invalid_link_page() -> HTMLResponse:
    """One page for every refused link, whoever it names: it tells nothing about customers."""
    body = ("<p>This unsubscribe link is not valid. Use the complete link from the footer of "
            "the email, or reply to the email and ask to be unsubscribed.</p>")
    return page("Link not valid", body, status=403)


def not_found_page() -> HTMLResponse:
    return page("Link not found", "<p>This link leads nowhere.</p>", status=404)
