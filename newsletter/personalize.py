"""Per-recipient values in a compiled issue.

An issue is rendered once with placeholders; each recipient's copy differs only by its delivery
token, which every per-recipient URL (unsubscribe, preferences, pixel, click, vote) is built
from. The token is URL-safe, so one literal substitution is safe in HTML, text and headers,
and SendGrid can do it server-side (`substitutions`).
"""

from __future__ import annotations

from collections.abc import Iterable

from newsletter.numbers import ascii_int
from newsletter.security.signing import sign, sign_many, unsign
from newsletter.sending.models import MAX_DELIVERY_ID

TOKEN_PLACEHOLDER = "__NL_TOKEN__"  # noqa: S105 - a placeholder, not a secret
DELIVERY_PURPOSE = "delivery"

# What the placeholder becomes in an editor's preview and in a test send. No delivery has these
# tokens, so nothing is recorded; the vote, unsubscribe and preferences pages answer them with a
# page that says what the link does in a subscriber's copy, so the tester's links all work.
PREVIEW_TOKEN = "preview"  # noqa: S105 - a placeholder value, not a secret
TEST_TOKEN = "test-send"  # noqa: S105 - a placeholder value, not a secret
SAMPLE_TOKENS = frozenset({PREVIEW_TOKEN, TEST_TOKEN})


def is_sample_token(token: str) -> bool:
    return token in SAMPLE_TOKENS


def delivery_token(delivery_id: int) -> str:
    return sign(DELIVERY_PURPOSE, str(delivery_id))


def delivery_tokens(delivery_ids: Iterable[int]) -> list[str]:
    """`delivery_token` for a whole batch at once (a send signs one per recipient)."""
    return sign_many(DELIVERY_PURPOSE, (str(i) for i in delivery_ids))


def read_delivery_token(token: str) -> int | None:
    """The delivery id a token names, or None for a forged, altered or impossible one (even a
    correctly signed id the table cannot hold, say from another deployment sharing the secret)."""
    value = unsign(DELIVERY_PURPOSE, token)
    delivery_id = ascii_int(value) if value is not None else None
    return delivery_id if delivery_id is not None and 0 < delivery_id <= MAX_DELIVERY_ID else None


def fill(template: str, token: str) -> str:
    return template.replace(TOKEN_PLACEHOLDER, token)
