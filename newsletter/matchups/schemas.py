"""The parsed form of a matchup, independent of where it came from (page or JSON)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

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
        from newsletter.matchups.slug import matchup_slug

        return matchup_slug(self.tools[0].name, self.tools[1].name)

    def content_hash(self) -> str:
        body = {
            "title": self.title,
            "tools": [asdict(t) for t in self.tools],
            "reviews": [asdict(r) for r in self.reviews],
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class PageError(ValueError):
    """A page that cannot be imported; names the line (1-based) when there is one."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason
