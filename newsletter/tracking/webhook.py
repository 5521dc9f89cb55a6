"""SendGrid's Signed Event Webhook: who may post events, and what a valid post looks like.

SendGrid signs `timestamp + raw body` with ECDSA P-256 / SHA-256 and sends the signature
(base64 DER) and the timestamp in two headers; the public key it shows in its settings is a
base64 DER SubjectPublicKeyInfo (SENDGRID_WEBHOOK_PUBLIC_KEY). The signature is checked on the
raw bytes before anything is parsed: re-serialised JSON would not match.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from newsletter.numbers import ascii_int

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# SendGrid posts at most a few MB; a bound keeps a hostile caller from exhausting memory.
MAX_BODY_BYTES = 16 * 1024 * 1024


class WebhookConfigError(Exception):
    """The public key is missing or is not an EC P-256 key."""


class SignatureError(Exception):
    """The request is not provably from SendGrid (or is too old to trust)."""


class PayloadError(Exception):
    """A correctly signed body that is not a JSON array of event objects."""


@lru_cache(maxsize=4)
def load_public_key(encoded: str) -> ec.EllipticCurvePublicKey:
    try:
        key = load_der_public_key(base64.b64decode(encoded.strip(), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise WebhookConfigError(
            f"SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key: {exc}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise WebhookConfigError("SENDGRID_WEBHOOK_PUBLIC_KEY is not an EC P-256 public key")
    return key


def verify(
    public_key: ec.EllipticCurvePublicKey,
    *,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    max_age_seconds: int,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless SendGrid signed exactly this body at about this time."""
    if not signature or not timestamp:
        raise SignatureError(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    # ASCII digits of a sane length: int() reads "٣" and 5,000-digit numbers, and a number past
    # a float's range made the age check below raise (a 500 that SendGrid retries for a day).
    signed_at = ascii_int(timestamp, max_digits=12)
    if signed_at is None:
        raise SignatureError(f"{TIMESTAMP_HEADER} is not a Unix time: {timestamp[:40]!r}")
    current = time.time() if now is None else now
    if abs(current - signed_at) > max_age_seconds:
        raise SignatureError(
            f"timestamp {signed_at} is more than {max_age_seconds}s from now: stale or replayed"
        )
    try:
        der_signature = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        raise SignatureError(f"{SIGNATURE_HEADER} is not base64") from None
    try:
        public_key.verify(der_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("signature does not match the body and timestamp") from None


def _finite(text: str) -> float:
    # Python reads NaN, Infinity and 1e999 where strict JSON has no such number; PostgreSQL's
    # json refuses them when the raw event is stored, which would fail the batch for good.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is not a finite JSON number")
    return value


def parse_events(body: bytes) -> list[dict[str, Any]]:
    try:
        payload = json.loads(body, parse_float=_finite, parse_constant=_finite)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PayloadError(f"body is not JSON: {exc}") from None
    except RecursionError:
        # SendGrid's events are two levels deep; thousands of nested brackets are not events.
        raise PayloadError("body is nested too deeply to be SendGrid events") from None
    if not isinstance(payload, list):
        raise PayloadError("body is not a JSON array of events")
    for index, item in enumerate(payload):
        if not isinstance(item, dict):
            raise PayloadError(f"event {index} is not a JSON object")
    # No database stores NUL (PostgreSQL) or a lone surrogate (neither engine can encode it),
    # and SendGrid retries a batch answered 5xx: one user agent or URL carrying \u0000 or
    # \ud800 would otherwise block its whole batch for good. JSON spells both only as escapes,
    # so the walk is needed only when such an escape is in the body.
    if b"\\u0000" in body or _SURROGATE_ESCAPE.search(body):
        cleaned: list[dict[str, Any]] = _storable(payload)
        return cleaned
    return payload


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """NUL dropped and lone surrogates made U+FFFD, in every key and string."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(lambda m: "" if m[0] == "\x00" else "\ufffd", value)
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def sign_payload(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """The signature SendGrid would send (tests, the benchmark and local replays use it)."""
    der = private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(der).decode()


def encode_public_key(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as SendGrid displays it (base64 DER SubjectPublicKeyInfo)."""
    der = private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()
