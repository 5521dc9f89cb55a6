"""HMAC-signed tokens for links that must not be forged (NEWSLETTER_SECRET_KEY).

A token is `<payload>.<signature>`, both URL-safe. The purpose is part of what is signed, so a
token made for one use (say, confirming) is worthless for another (say, erasing).
"""

from __future__ import annotations

import base64
import binascii
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


_BLOCK = 64  # SHA-256's block size, in bytes
_TO_URL = bytes.maketrans(b"+/", b"-_")


def _b64_bytes(data: bytes) -> bytes:
    """URL-safe base64 without padding, in C (`urlsafe_b64encode` adds two Python calls)."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_TO_URL)


@functools.lru_cache(maxsize=8)
def _keyed(secret: str) -> tuple[Any, Any]:
    """HMAC-SHA256's two keyed states (RFC 2104: the key XOR ipad, the key XOR opad), hashed
    once per secret; each token copies them.

    A send signs a token per recipient, and a tracked click checks one per hit: copying two
    hashlib states is about a third of the cost of copying an `hmac.HMAC` (measured
    2026-12-03: 1.3 against 3.5 ms per 1,000 tokens). The bytes are those of
    `hmac.new(secret, msg, sha256)`: existing tokens still verify (tests/security).
    """
    key = secret.encode()
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def _digest(keyed: tuple[Any, Any], message: bytes) -> bytes:
    inner = keyed[0].copy()
    inner.update(message)
    outer = keyed[1].copy()
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


def _mac(purpose: str, payload: str, secret: str) -> str:
    return _b64_bytes(_digest(_keyed(secret), f"{purpose}:{payload}".encode())[:16]).decode()


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
    inner, outer = _keyed(secret or require_signing_key())
    inner_copy, outer_copy = inner.copy, outer.copy
    b2a, to_url = binascii.b2a_base64, _TO_URL
    prefix = f"{purpose}:".encode()
    tokens = []
    for value in values:
        payload = b2a(value.encode(), newline=False).rstrip(b"=").translate(to_url)
        mac = inner_copy()
        mac.update(prefix + payload)
        sealed = outer_copy()
        sealed.update(mac.digest())
        signature = b2a(sealed.digest()[:16], newline=False).rstrip(b"=").translate(to_url)
        tokens.append((payload + b"." + signature).decode())
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
