"""Who is calling: a shop by its Bearer key, or Shopify by the HMAC of the raw body.

Secrets are compared with `hmac.compare_digest`, and every shop's key is compared on every
call, so the answer takes the same time whichever key (or how much of one) was guessed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from intake.errors import EventRejected

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="loyalloop"'}


class ShopKeys:
    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = [(shop, key.encode()) for shop, key in keys.items()]

    def shop_for(self, authorization: str | None) -> str:
        """The shop whose key this `Authorization` header carries."""
        if not authorization:
            raise _unauthorized("is missing: send 'Authorization: Bearer <shop key>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("must be 'Bearer <shop key>'")
        presented = token.encode()
        found: str | None = None
        for shop, key in self._keys:
            if hmac.compare_digest(key, presented) and found is None:
                found = shop
        if found is None:
            raise _unauthorized("is not the key of any shop")
        return found


def require_shop(authenticated: str, shop_id: str, field: str = "shop_id") -> None:
    """A shop only touches its own orders and customers."""
    if not hmac.compare_digest(authenticated.encode(), shop_id.encode()):
        raise EventRejected(403, field, f"the key used belongs to another shop, not {shop_id!r}")


def verify_shopify(secret: str, body: bytes, signature: str | None) -> None:
    """Shopify signs the raw body: base64(HMAC-SHA256(app secret, body))."""
    field = "X-Shopify-Hmac-Sha256"
    if not signature:
        raise EventRejected(401, field, "is missing: Shopify signs every webhook with it")
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    if not hmac.compare_digest(expected, signature.strip().encode()):
        raise EventRejected(401, field, "does not match the body signed with this shop's secret")


def verify_shopify_domain(expected: str | None, presented: str | None) -> None:
    """One app's secret signs the webhooks of every shop the app is installed on, so after the
    signature, the shop Shopify names must be the one this address is for."""
    field = "X-Shopify-Shop-Domain"
    if not presented or not presented.strip():
        raise EventRejected(403, field, "is missing: Shopify names the shop in every webhook")
    if expected is None:
        raise EventRejected(403, field, "no Shopify domain is configured for this shop "
                                        "(LOYALLOOP_SHOPIFY_DOMAINS)")
    if not hmac.compare_digest(presented.strip().lower().encode(), expected.encode()):
        raise EventRejected(403, field, "is not the Shopify domain configured for this shop")


def _unauthorized(problem: str) -> EventRejected:
    return EventRejected(401, "Authorization", problem, headers=BEARER_CHALLENGE)
