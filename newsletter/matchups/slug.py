"""A matchup's identity (its two exact tool names) and its slug (its name in URLs).

The slug is made from the names' words, so two different pairs can reduce to one (names in
another script, names that differ only in punctuation, a " vs " inside a name): the identity is
`pair_key`, and a second pair whose words are taken gets the slug with a short suffix of its
own. A stored matchup keeps the slug it was first given: sent mail links to it.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata


def pair_key(tool_a: str, tool_b: str) -> str:
    """The digest of the two names, exactly (canonically composed: the same text is the same)."""
    names = [unicodedata.normalize("NFC", tool_a), unicodedata.normalize("NFC", tool_b)]
    return hashlib.sha256(json.dumps(names, ensure_ascii=False).encode()).hexdigest()


def slugify(text: str) -> str:
    """Lower-case words joined by hyphens; accents dropped, letters of other scripts kept."""
    decomposed = unicodedata.normalize("NFKD", text.replace("&", " and "))
    kept = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[\W_]+", "-", kept).strip("-")


def matchup_slug(tool_a: str, tool_b: str) -> str:
    slug = f"{slugify(tool_a) or 'tool'}-vs-{slugify(tool_b) or 'tool'}"
    return slug[:200].rstrip("-")


def distinct_slug(slug: str, key: str) -> str:
    """The slug for a pair whose words another pair already took: a suffix from its own key."""
    return f"{slug[:190].rstrip('-')}-{key[:8]}"
