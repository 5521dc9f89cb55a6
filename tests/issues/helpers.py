"""Matchups for issue tests: the real seed pages, the repository's examples, and variants."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from newsletter.issues import verdicts
from newsletter.issues.render import FeaturedMatchup, IssueContent
from newsletter.matchups.models import Matchup, MatchupReview, MatchupTool
from newsletter.matchups.page_parser import decode_page, parse_page
from newsletter.matchups.schemas import MatchupData
from newsletter.matchups.service import import_matchup
from tests.conftest import REPO, SEEDS

EXAMPLES = REPO / "examples" / "matchups"


def page(path: Path) -> MatchupData:
    return parse_page(decode_page(path.read_bytes()), path.name)


def seed_pages() -> list[MatchupData]:
    return [page(p) for p in sorted(SEEDS.glob("*.txt"))]


def example_pages() -> list[MatchupData]:
    return [page(p) for p in sorted(EXAMPLES.glob("*.txt"))]


def renamed(data: MatchupData, a: str, b: str, **tool_changes: str) -> MatchupData:
    tools = (
        dataclasses.replace(data.tools[0], name=a, **tool_changes),
        dataclasses.replace(data.tools[1], name=b),
    )
    return dataclasses.replace(data, title=f"{a} vs {b}", tools=tools)


def transient(data: MatchupData, matchup_id: int) -> Matchup:
    """An in-memory Matchup (no database) for the pure writing and rendering functions."""
    matchup = Matchup(id=matchup_id, slug=data.slug, title=data.title)
    matchup.tools = [MatchupTool(position=i, **vars(t)) for i, t in enumerate(data.tools)]
    matchup.reviews = [
        MatchupReview(reviewer=r.reviewer, tool=r.tool, lens=r.lens, quote=r.quote)
        for r in data.reviews
    ]
    return matchup


def ten_matchups() -> list[MatchupData]:
    """Ten distinct matchups built from the seed pages (long real quotes: a worst case)."""
    seeds = seed_pages() + example_pages()
    return [
        renamed(seeds[i % len(seeds)], f"{seeds[i % len(seeds)].tools[0].name} {i}", f"Rival {i}")
        for i in range(10)
    ]


def content_for(datas: list[MatchupData], cap: int = 10) -> IssueContent:
    used: set[str] = set()
    # The issue's own order: most decisive panel first (stable for ties).
    ordered = sorted(
        datas, key=lambda d: -abs(d.tools[0].panel_ship_pct - d.tools[1].panel_ship_pct)
    )
    found = [verdicts.verdict(transient(d, i + 1), used_quotes=used) for i, d in enumerate(ordered)]
    return IssueContent(
        week="2026-W10",
        subject=verdicts.subject_line(found),
        preheader=verdicts.preheader_line(found),
        intro=verdicts.intro_text(found),
        storylines=verdicts.storylines(found),
        featured=[FeaturedMatchup(v, v.sentences, False) for v in found[:cap]],
        more=found[cap:],
    )


def add_matchups(session: Session, datas: list[MatchupData], at: datetime) -> list[Matchup]:
    found = [import_matchup(session, d, at)[0] for d in datas]
    session.commit()
    return found
