"""Signed links in emails: the token that lets a customer unsubscribe without signing in.

The token is an HMAC over the shop id and the customer id, each length-prefixed: joined with a
separator, shop `a:b` customer `c` and shop `a` customer `b:c` were one input and so one token
(`:` is allowed in both ids). Tokens do not expire: an unsubscribe link must keep working for as
long as the email may be read. Emails sent before the change carry the old token, which is
accepted only where its input was unambiguous (neither id holds `:`)."""

from __future__ import annotations

import hashlib
import hmac

TOKEN_CHARS = 32


def signed(*parts: str) -> bytes:
    """Each part behind its length, so no two tuples of parts read the same."""
    return b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:TOKEN_CHARS]


def link_token(secret: str, shop_id: str, customer_id: str) -> str:
    return _mac(secret, b"unsubscribe\0" + signed(shop_id, customer_id))


def verify_link_token(secret: str, shop_id: str, customer_id: str, token: str) -> bool:
    """In constant time, whatever part of the token is wrong."""
    presented = token.encode()
    valid = hmac.compare_digest(link_token(secret, shop_id, customer_id).encode(), presented)
    legacy = _mac(secret, f"{shop_id}:{customer_id}".encode()).encode()
    unambiguous = ":" not in shop_id and ":" not in customer_id
    return valid or (hmac.compare_digest(legacy, presented) and unambiguous)
