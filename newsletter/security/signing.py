"""HMAC-signed tokens for links that must not be forged (NEWSLETTER_SECRET_KEY).

A token is `<payload>.<signature>`, both URL-safe. The purpose is part of what is signed, so a
token made for one use (say, confirming) is worthless for another (say, erasing).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from collections.abc import Iterable
from typing import Any

from newsletter.security.keys import require_signing_key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sha256(data: bytes = b"") -> Any:
    return hashlib.sha256(data)


@functools.lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    """The HMAC state after the key, computed once per secret; each token copies it.

    A send signs a token per recipient, and a tracked click checks one per hit: copying the
    keyed state skips the key schedule every time (a plain callable as digestmod makes `hmac`
    keep its two pre-keyed SHA-256 states, whose copies are cheaper than OpenSSL's HMAC copy).
    The bytes are those of `hmac.new(secret, msg, sha256)`: existing tokens still verify.
    """
    return hmac.new(secret.encode(), digestmod=_sha256)


def _mac(purpose: str, payload: str, secret: str) -> str:
    mac = _keyed(secret).copy()
    mac.update(f"{purpose}:{payload}".encode())
    return _b64(mac.digest()[:16])


def sign(
    purpose: str, value: str, *, expires_in: int | None = None, secret: str | None = None
) -> str:
    """Sign `value` for `purpose`; with `expires_in` (seconds) the token stops working then."""
    secret = secret or require_signing_key()
    payload = _b64(value.encode())
    if expires_in is not None:
        payload = f"{payload}~{int(time.time()) + expires_in:x}"
    return f"{payload}.{_mac(purpose, payload, secret)}"


def sign_many(purpose: str, values: Iterable[str], *, secret: str | None = None) -> list[str]:
    """`sign(purpose, v)` for each value (no expiry), with the per-call lookups done once."""
    keyed = _keyed(secret or require_signing_key())
    encode = base64.urlsafe_b64encode
    prefix = f"{purpose}:".encode()
    tokens = []
    for value in values:
        payload = encode(value.encode()).rstrip(b"=")
        mac = keyed.copy()
        mac.update(prefix + payload)
        tokens.append((payload + b"." + encode(mac.digest()[:16]).rstrip(b"=")).decode())
    return tokens


def unsign(
    purpose: str, token: str, *, secret: str | None = None, now: float | None = None
) -> str | None:
    """The signed value, or None for a forged, altered, expired or malformed token."""
    secret = secret or require_signing_key()
    # Tokens we make are ASCII; hmac.compare_digest raises TypeError on other str, and a
    # link's path is whatever a stranger typed.
    if len(token) > 2048 or not token.isascii():
        return None
    payload, dot, signature = token.rpartition(".")
    if not dot or not payload:
        return None
    if not hmac.compare_digest(signature, _mac(purpose, payload, secret)):
        return None
    body, tilde, expiry = payload.partition("~")
    if tilde:
        try:
            if int(expiry, 16) < (now if now is not None else time.time()):
                return None
        except ValueError:
            return None
    try:
        return _unb64(body).decode()
    except (ValueError, UnicodeDecodeError):
        return None
