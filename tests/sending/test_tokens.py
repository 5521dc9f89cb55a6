"""Delivery tokens are signed once per recipient on the send's hot path: the faster signing
must make exactly the tokens it always made, so links in mail already sent keep working."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from newsletter.security.delivery_tokens import (
    DeliveryLink,
    delivery_token,
    delivery_tokens,
    read_delivery_token,
)
from newsletter.security.signing import _b64, sign, sign_many, unsign

SECRET = "a-known-secret-for-the-test"


def reference_token(purpose: str, value: str, secret: str) -> str:
    """The token as first specified: one-shot HMAC-SHA256, first 16 bytes, base64url."""
    payload = _b64(value.encode())
    mac = hmac.new(secret.encode(), f"{purpose}:{payload}".encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac[:16])}"


def test_tokens_issued_before_the_change_still_verify() -> None:
    # Made by the previous signing code (one-shot hmac.new per token), kept verbatim.
    assert unsign("delivery", "MTIzNDU2.e0MEQfTLHKq_BRPpMCKrZA", secret=SECRET) == "123456"
    assert unsign("confirm", "NDI~a69b962d.VmmMQRmKIRLq5puKgMzSMw", secret=SECRET) == "42"
    assert sign("delivery", "123456", secret=SECRET) == "MTIzNDU2.e0MEQfTLHKq_BRPpMCKrZA"


@pytest.mark.parametrize(
    "secret", [SECRET, "s", "ü-secret", "k" * 63, "k" * 64, "k" * 65, "long" * 40]
)
def test_one_by_one_and_batched_tokens_equal_the_reference(secret: str) -> None:
    values = ["1", "7", "123456789", "ünï"]
    expected = [reference_token("delivery", v, secret) for v in values]
    assert [sign("delivery", v, secret=secret) for v in values] == expected
    assert sign_many("delivery", values, secret=secret) == expected
    assert sign_many("other", values, secret=secret) != expected  # the purpose is signed


def test_batched_delivery_tokens_read_back_to_their_deliveries() -> None:
    ids = list(range(1, 3000, 37))
    links = [(i, f"pub{i}") for i in ids]
    tokens = delivery_tokens(links)
    assert tokens == [delivery_token(i, p) for i, p in links]
    assert [read_delivery_token(t) for t in tokens] == [DeliveryLink(i, p) for i, p in links]
    assert read_delivery_token(tokens[0][:-1] + ("A" if tokens[0][-1] != "A" else "B")) is None
