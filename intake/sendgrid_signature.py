"""SendGrid's Signed Event Webhook: ECDSA P-256 with SHA-256 over the timestamp header followed
by the raw body, the signature base64 DER, the key base64 DER SubjectPublicKeyInfo as SendGrid's
settings page shows it. The timestamp is signed, so a batch replayed more than `MAX_SKEW_S` from
now is refused even with its true signature (a replay within it changes nothing: sg_event_id)."""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from intake.errors import EventRejected

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_SKEW_S = 300
MAX_TIME_CHARS = 16


def load_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or as PEM; a ValueError naming
    the setting otherwise."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("LOYALLOOP_SENDGRID_WEBHOOK_KEY is not an ECDSA P-256 public key in "
                         "base64 (copy it from SendGrid's Signed Event Webhook settings)")
    return key


class WebhookVerifier:
    def __init__(self, key: str, clock: Callable[[], float] = time.time) -> None:
        self.key = load_key(key)
        self.clock = clock

    def verify(self, signature: str | None, timestamp: str | None, body: bytes) -> None:
        """Returns if SendGrid signed this body at this time; raises EventRejected otherwise
        (401 unsigned or wrongly signed, 400 a timestamp that is no time, 403 out of window)."""
        if not signature:
            raise EventRejected(401, SIGNATURE_HEADER, "is missing: SendGrid signs every batch")
        if not timestamp:
            raise EventRejected(401, TIMESTAMP_HEADER, "is missing: SendGrid signs it with "
                                "every batch")
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > MAX_TIME_CHARS:
            raise EventRejected(400, TIMESTAMP_HEADER, "is not a Unix time in seconds")
        try:
            der = base64.b64decode(signature, validate=True)
            self.key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        except (binascii.Error, ValueError, InvalidSignature):
            raise EventRejected(401, SIGNATURE_HEADER, "does not verify with the configured "
                                "key over this timestamp and body") from None
        if abs(self.clock() - int(timestamp)) > MAX_SKEW_S:
            raise EventRejected(403, TIMESTAMP_HEADER, f"is more than {MAX_SKEW_S // 60} "
                                "minutes from now: a replayed or delayed batch")
