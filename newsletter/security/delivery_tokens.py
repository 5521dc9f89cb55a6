"""Per-recipient values in a compiled issue.

An issue is rendered once with placeholders; each recipient's copy differs only by its delivery
token, which every per-recipient URL (unsubscribe, preferences, pixel, click, vote) is built
from. The token is URL-safe, so one literal substitution is safe in HTML, text and headers,
and SendGrid can do it server-side (`substitutions`).

A delivery token names the delivery and the public id of the subscriber it was made for
(subscribers.public_id, random and never given again), and holds only while that delivery still
belongs to that person: ids alone are not identities (SQLite used to give a deleted row's id to
the next row). Tokens signed before public ids existed (purpose "delivery") name only the id;
they are honoured for the deliveries that existed then, never for later ones.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from newsletter.numbers import MAX_ROW_ID, ascii_int
from newsletter.security.signing import sign, sign_many, unsign

TOKEN_PLACEHOLDER = "__NL_TOKEN__"  # noqa: S105 - a placeholder, not a secret
DELIVERY_PURPOSE = "delivery-v2"
LEGACY_DELIVERY_PURPOSE = "delivery"
# instance_state: the highest delivery id whose links were signed with LEGACY_DELIVERY_PURPOSE.
LEGACY_MAX_DELIVERY_ID = "legacy_links_max_delivery_id"

# What the placeholder becomes in an editor's preview and in a test send. No delivery has these
# tokens, so nothing is recorded; the vote, unsubscribe and preferences pages answer them with a
# page that says what the link does in a subscriber's copy, so the tester's links all work.
PREVIEW_TOKEN = "preview"  # noqa: S105 - a placeholder value, not a secret
TEST_TOKEN = "test-send"  # noqa: S105 - a placeholder value, not a secret
SAMPLE_TOKENS = frozenset({PREVIEW_TOKEN, TEST_TOKEN})


def is_sample_token(token: str) -> bool:
    return token in SAMPLE_TOKENS


@dataclass(frozen=True, slots=True)
class DeliveryLink:
    """What a delivery token says: the delivery, and whose it is (None: a legacy token)."""

    delivery_id: int
    public_id: str | None

    def holds_for(self, subscriber_public_id: str | None, legacy_max_id: int) -> bool:
        """Whether this link may act on the delivery as it is now stored.

        `subscriber_public_id` is that of the delivery's subscriber (None once they are
        erased: the delivery is anonymous, and the link still counts for it, never for a
        person). `legacy_max_id` bounds what a legacy token may name.
        """
        if self.public_id is None:
            return self.delivery_id <= legacy_max_id
        if subscriber_public_id is None:
            return True
        return hmac.compare_digest(self.public_id, subscriber_public_id)


def delivery_token(delivery_id: int, public_id: str) -> str:
    return sign(DELIVERY_PURPOSE, f"{delivery_id}.{public_id}")


def delivery_tokens(links: Iterable[tuple[int, str]]) -> list[str]:
    """`delivery_token` for a whole batch of (delivery id, public id) at once (a send signs
    one per recipient)."""
    return sign_many(DELIVERY_PURPOSE, (f"{d}.{p}" for d, p in links))


def read_delivery_token(token: str) -> DeliveryLink | None:
    """What a token names, or None for a forged, altered or impossible one (even a correctly
    signed id the table cannot hold, say from another deployment sharing the secret)."""
    value = unsign(DELIVERY_PURPOSE, token)
    public_id: str | None = None
    if value is not None:
        raw_id, dot, public_id = value.partition(".")
        if not dot or not public_id:
            return None
    else:
        raw_id = unsign(LEGACY_DELIVERY_PURPOSE, token) or ""
    delivery_id = ascii_int(raw_id)
    if delivery_id is None or not 0 < delivery_id <= MAX_ROW_ID:
        return None
    return DeliveryLink(delivery_id, public_id)


def fill(template: str, token: str) -> str:
    return template.replace(TOKEN_PLACEHOLDER, token)
