"""The JSON form of a matchup: the same object `newsletter matchups list --json` prints.

A file holds one object or a list of them. `slug` is ignored on input (it is derived from the
tool names, so it stays stable); `title` defaults to "<A> vs <B>"; `published_at` is optional.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from newsletter.matchups.models import Lens
from newsletter.matchups.schemas import (
    MatchupData,
    PageError,
    ReviewData,
    ToolData,
    check_storable,
)

NonEmpty = Annotated[str, Field(min_length=1)]
Pct = Annotated[int, Field(ge=0, le=100)]


class ToolIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: NonEmpty
    category: NonEmpty
    tagline: str = ""
    panel_ship_pct: Pct
    community_pct: Pct | None = None
    entry: NonEmpty
    description: NonEmpty


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    # A panel is a handful of people; the bound keeps the number inside an INTEGER column.
    reviewer: Annotated[int, Field(ge=1, le=1000)]
    lens: Lens
    tool: Annotated[int, Field(ge=0, le=1)]
    quote: NonEmpty


class MatchupIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    slug: str | None = None
    title: str | None = None
    published_at: datetime | None = None
    tools: Annotated[list[ToolIn], Field(min_length=2, max_length=2)]
    reviews: list[ReviewIn] = []

    @field_validator("published_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("published_at needs a time zone offset, e.g. 2026-11-16T09:00:00Z")
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):
            # Year 1 or 9999 with an offset falls outside what a datetime can hold in UTC.
            raise ValueError(f"published_at {value.isoformat()} is out of range") from None

    @field_validator("reviews")
    @classmethod
    def _unique_reviews(cls, reviews: list[ReviewIn]) -> list[ReviewIn]:
        seen = set()
        for review in reviews:
            key = (review.reviewer, review.tool)
            if key in seen:
                raise ValueError(
                    f"reviewer {review.reviewer} has two quotes about tool {review.tool}"
                )
            seen.add(key)
        return reviews


def parse_json(text: str, source_name: str = "") -> list[MatchupData]:
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PageError(f"invalid JSON: {exc.msg}", exc.lineno) from None
    except RecursionError:
        raise PageError("invalid JSON: nested too deeply") from None
    except ValueError as exc:
        # Python refuses integers of more than 4,300 digits (a denial-of-service guard).
        raise PageError(f"invalid JSON: {exc}") from None
    items = document if isinstance(document, list) else [document]
    result = []
    for index, item in enumerate(items):
        try:
            parsed = MatchupIn.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            prefix = f"[{index}]" if isinstance(document, list) else ""
            raise PageError(
                f"{prefix}{'.' if prefix and where else ''}{where}: {first['msg']}"
            ) from None
        tools = tuple(ToolData(**t.model_dump()) for t in parsed.tools)
        prefix = f"[{index}]." if isinstance(document, list) else ""
        title = parsed.title or f"{tools[0].name} vs {tools[1].name}"
        reviews = tuple(
            ReviewData(r.reviewer, r.lens, r.tool, r.quote)
            for r in sorted(parsed.reviews, key=lambda r: (r.reviewer, r.tool))
        )
        data = MatchupData(title, (tools[0], tools[1]), reviews, parsed.published_at, source_name)
        check_storable(data, prefix)
        result.append(data)
    return result
