"""The parsed form of a matchup, independent of where it came from (page or JSON)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime

from newsletter.errors import Refused
from newsletter.matchups.models import Lens


@dataclass(frozen=True)
class ToolData:
    name: str
    category: str
    tagline: str
    panel_ship_pct: int
    community_pct: int | None
    entry: str
    description: str


@dataclass(frozen=True)
class ReviewData:
    reviewer: int  # 1-based
    lens: Lens
    tool: int  # 0 = the first tool on the page, 1 = the second
    quote: str


@dataclass(frozen=True)
class MatchupData:
    title: str
    tools: tuple[ToolData, ToolData]
    reviews: tuple[ReviewData, ...]
    published_at: datetime | None = None
    source_name: str = field(default="", compare=False)

    @property
    def slug(self) -> str:
        """The slug a new matchup of this pair is given when no other pair holds it."""
        from newsletter.matchups.slug import matchup_slug

        return matchup_slug(self.tools[0].name, self.tools[1].name)

    @property
    def pair_key(self) -> str:
        from newsletter.matchups.slug import pair_key

        return pair_key(self.tools[0].name, self.tools[1].name)

    def content_hash(self) -> str:
        body = {
            "title": self.title,
            "tools": [asdict(t) for t in self.tools],
            "reviews": [asdict(r) for r in self.reviews],
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# Characters no page means and one engine cannot store: PostgreSQL refuses NUL in text and a
# lone surrogate cannot be encoded at all. Tabs and line ends are text.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """A description of the first character a matchup's text may not hold, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    what = "a NUL character" if char == "\x00" else f"the control character U+{ord(char):04X}"
    if "\ud800" <= char <= "\udfff":
        what = f"a lone surrogate U+{ord(char):04X}"
    return f"{what} at column {found.start() + 1}"


def check_storable(data: MatchupData, where: str = "") -> None:
    """Refuse a parsed matchup with text that cannot be stored, naming the field."""
    fields: list[tuple[str, str]] = [("title", data.title)]
    for index, tool in enumerate(data.tools):
        for name in ("name", "category", "tagline", "entry", "description"):
            fields.append((f"tools.{index}.{name}", getattr(tool, name)))
    fields += [(f"reviews.{i}.quote", r.quote) for i, r in enumerate(data.reviews)]
    for name, text in fields:
        problem = unstorable(text)
        if problem:
            raise PageError(f"{where}{name}: {problem}")


class PageError(Refused):
    """A page that cannot be imported; names the line (1-based) when there is one."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason
