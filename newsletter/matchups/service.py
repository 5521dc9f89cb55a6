"""Matchup import: read files, parse them, and upsert by slug.

Services never commit: the caller gives one transaction per file, so one bad file never takes
the good ones of the same run down with it.
"""

from __future__ import annotations

import enum
import logging
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from newsletter.errors import Refused
from newsletter.matchups import repository
from newsletter.matchups.json_form import parse_json
from newsletter.matchups.models import Matchup
from newsletter.matchups.page_parser import decode_page, parse_page
from newsletter.matchups.schemas import MatchupData, PageError
from newsletter.matchups.slug import distinct_slug
from newsletter.orm import utcnow

PAGE_SUFFIXES = {".txt", ".json"}
# A week's pages are a few kilobytes each; a file far larger is not one (and is not read whole).
MAX_FILE_BYTES = 8 * 1024 * 1024

log = logging.getLogger(__name__)


class MatchupChange(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ParsedFile:
    path: Path
    matchups: list[MatchupData]


@dataclass(frozen=True)
class RefusedFile:
    path: Path
    error: PageError

    def message(self) -> str:
        where = f"{self.path}:{self.error.line}" if self.error.line else str(self.path)
        return f"{where}: {self.error.reason}"


def expand_paths(paths: list[Path]) -> Iterator[Path | RefusedFile]:
    """Files as given, folders as their .txt/.json files in name order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PAGE_SUFFIXES
            )
        elif path.is_file():
            yield path
        else:
            yield RefusedFile(path, PageError("no such file or folder"))


def read_file(path: Path) -> ParsedFile | RefusedFile:
    """The file's matchups, or why it is refused: this never raises, so one file that breaks
    the parser in a way nobody foresaw is refused alone and the others still go in."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return RefusedFile(
                path,
                PageError(f"{size:,} bytes is too large for a page (limit {MAX_FILE_BYTES:,})"),
            )
        raw = path.read_bytes()
        text = decode_page(raw)
        if path.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
            return ParsedFile(path, parse_json(text, path.name))
        return ParsedFile(path, [parse_page(text, path.name)])
    except PageError as exc:
        return RefusedFile(path, exc)
    except OSError as exc:
        return RefusedFile(path, PageError(f"cannot read: {exc.strerror}"))
    except Exception as exc:
        log.exception("matchup file %s: the parser failed", path)
        return RefusedFile(path, PageError(f"could not be parsed ({type(exc).__name__}: {exc})"))


def not_stored(path: Path, exc: Exception) -> RefusedFile:
    """A file the database refused (a value it cannot hold, a constraint): refused alone, with
    the database's own first line as the reason rather than a traceback."""
    log.warning("matchup file %s: not stored", path, exc_info=exc)
    cause = getattr(exc, "orig", None) or exc
    first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    return RefusedFile(path, PageError(f"could not be stored: {first_line[:300]}"))


def find(session: Session, data: MatchupData) -> Matchup | None:
    """The stored matchup `data` is a new version of (the same two tool names), if any."""
    return repository.get_by_pair_key(session, data.pair_key)


def import_matchup(
    session: Session, data: MatchupData, published_at: datetime | None = None
) -> tuple[Matchup, MatchupChange]:
    """Insert or update by slug. `published_at` (or the data's own) wins over the stored one;
    otherwise a new matchup counts as published when first imported."""
    existing = find(session, data)
    when = published_at or data.published_at
    if existing is None:
        slug = data.slug
        if repository.slug_taken(session, slug):
            slug = distinct_slug(slug, data.pair_key)
        return repository.add(session, data, when or utcnow(), slug), MatchupChange.CREATED
    when = when or existing.published_at
    if existing.content_hash == data.content_hash() and existing.published_at == when:
        return existing, MatchupChange.UNCHANGED
    repository.replace_content(session, existing, data, when)
    return existing, MatchupChange.UPDATED


def to_json(matchup: Matchup) -> dict[str, Any]:
    """The public JSON shape (a contract: other tools read it)."""
    return {
        "slug": matchup.slug,
        "title": matchup.title,
        "published_at": matchup.published_at.isoformat(),
        "tools": [
            {
                "name": t.name,
                "category": t.category,
                "tagline": t.tagline,
                "panel_ship_pct": t.panel_ship_pct,
                "community_pct": t.community_pct,
                "entry": t.entry,
                "description": t.description,
            }
            for t in matchup.tools
        ],
        "reviews": [
            {"reviewer": r.reviewer, "lens": r.lens.value, "tool": r.tool, "quote": r.quote}
            for r in matchup.reviews
        ],
    }


def get_by_slug(session: Session, slug: str) -> Matchup | None:
    return repository.get_by_slug(session, slug)


def list_all(session: Session) -> list[Matchup]:
    """Oldest published first."""
    return repository.list_all(session)


# --- categories: the topics a reader can choose ---------------------------------------------


class TopicError(Refused):
    """A topic that is not one of the site's categories."""


def categories(session: Session) -> list[str]:
    """The categories the site has published matchups in: the topics readers choose from."""
    return [name for name in repository.categories(session) if name.strip()]


def _topic_key(name: str) -> str:
    # "developer tools", "Developer  Tools" and a full-width "Ｄeveloper Tools" name the same
    # category; a look-alike letter from another script does not (NFKC keeps it apart).
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def category_of(session: Session, names: Sequence[str]) -> dict[str, str]:
    """Which of `names` (tags from another tool, say) name a published category (case and
    spacing aside), and which: {name: category}."""
    known = {_topic_key(name): name for name in categories(session)}
    return {name: known[_topic_key(name)] for name in names if _topic_key(name) in known}


def categories_named(
    session: Session, raw_names: Sequence[str], *, also: Sequence[str] = ()
) -> list[str]:
    """The published categories `raw_names` name (case and spacing aside), each once, as the
    site spells them; a name that is none of them is refused, naming it and every topic.
    `also`: names allowed besides (the person's own, once the site stopped publishing one)."""
    known = {_topic_key(name): name for name in also}
    known |= {_topic_key(name): name for name in categories(session)}
    chosen: list[str] = []
    for raw in raw_names:
        key = _topic_key(raw)
        if not key:
            continue
        if key not in known:
            topics = ", ".join(categories(session)) or "none yet (no matchup is published)"
            raise TopicError(f"{raw[:100]!r} is not a topic; the topics are: {topics}")
        if known[key] not in chosen:
            chosen.append(known[key])
    return chosen
