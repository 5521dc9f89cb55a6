"""Stable slugs: derived from the two tool names, so a re-import finds the same matchup."""

from __future__ import annotations

import re
import unicodedata


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    ascii_text = ascii_text.replace("&", " and ")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def matchup_slug(tool_a: str, tool_b: str) -> str:
    slug = f"{slugify(tool_a) or 'tool'}-vs-{slugify(tool_b) or 'tool'}"
    return slug[:200].rstrip("-")
