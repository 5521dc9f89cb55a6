"""Reading whole numbers from text that arrives from outside (URLs, headers, webhooks, files).

`str.isdigit()` is true for "²", "³" and other Unicode digits that `int()` then refuses (or
reads as another script's digits), which turned odd input into 500s; every such parse goes
through here instead.
"""

from __future__ import annotations

# Row ids are INTEGER columns (32 bits on PostgreSQL): a larger number arriving from outside (a
# link token, a webhook's custom args) names no row, and looking it up would be an error rather
# than a miss.
MAX_ROW_ID = 2**31 - 1


def ascii_int(text: str, *, max_digits: int = 18) -> int | None:
    """The non-negative integer `text` spells in ASCII digits, or None.

    `max_digits` bounds the work and keeps the value within a 64-bit integer."""
    if not text or len(text) > max_digits or not (text.isascii() and text.isdigit()):
        return None
    return int(text)
