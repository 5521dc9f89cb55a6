"""HMAC-signed tokens for links that must not be forged (NEWSLETTER_SECRET_KEY).

A token is `<payload>.<signature>`, both URL-safe. The purpose is part of what is signed, so a
token made for one use (say, confirming) is worthless for another (say, erasing).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from newsletter.settings import get_settings


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(purpose: str, payload: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"{purpose}:{payload}".encode(), hashlib.sha256).digest()
    return _b64(digest[:16])


def sign(
    purpose: str, value: str, *, expires_in: int | None = None, secret: str | None = None
) -> str:
    """Sign `value` for `purpose`; with `expires_in` (seconds) the token stops working then."""
    secret = secret or get_settings().newsletter_secret_key
    payload = _b64(value.encode())
    if expires_in is not None:
        payload = f"{payload}~{int(time.time()) + expires_in:x}"
    return f"{payload}.{_mac(purpose, payload, secret)}"


def unsign(
    purpose: str, token: str, *, secret: str | None = None, now: float | None = None
) -> str | None:
    """The signed value, or None for a forged, altered, expired or malformed token."""
    secret = secret or get_settings().newsletter_secret_key
    payload, dot, signature = token.rpartition(".")
    if not dot or not payload or len(token) > 2048:
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
