"""Matchups for issue tests: the real seed pages, the repository's examples, and variants."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy.orm import Session

from newsletter.issues import verdicts
from newsletter.issues.render import FeaturedMatchup, IssueContent
from newsletter.issues.service import assemble
from newsletter.matchups.models import Lens, Matchup, MatchupReview, MatchupTool
from newsletter.matchups.page_parser import decode_page, parse_page
from newsletter.matchups.schemas import MatchupData, ReviewData, ToolData
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


_LENSES = (Lens.BUILDER, Lens.SKEPTIC, Lens.FUTURIST, Lens.MONEY)


def generated(
    a: str,
    b: str,
    panel: tuple[int, int],
    *,
    entry: tuple[str, str] = ("Free", "Free"),
    community: tuple[int | None, int | None] = (None, None),
    quote: str = "",
) -> MatchupData:
    """A matchup made up for a test: the figures it needs and quotes of its own."""
    tools = tuple(
        ToolData(
            name=name,
            category="Writing assistants",
            tagline=f"{name} does the work",
            panel_ship_pct=pct,
            community_pct=vote,
            entry=price,
            description=f"{name} is a tool made up for a test.",
        )
        for name, pct, price, vote in zip((a, b), panel, entry, community, strict=True)
    )
    reviews = tuple(
        ReviewData(
            reviewer=i + 1,
            lens=lens,
            tool=tool,
            quote=quote or f"{lens.value.title()} on {tools[tool].name}: it holds up. Mostly.",
        )
        for i, lens in enumerate(_LENSES)
        for tool in (0, 1)
    )
    return MatchupData(title=f"{a} vs {b}", tools=(tools[0], tools[1]), reviews=reviews)


def ten_matchups() -> list[MatchupData]:
    """Ten distinct matchups built from the seed pages (long real quotes: a worst case)."""
    seeds = seed_pages() + example_pages()
    return [
        renamed(seeds[i % len(seeds)], f"{seeds[i % len(seeds)].tools[0].name} {i}", f"Rival {i}")
        for i in range(10)
    ]


def content_for(datas: list[MatchupData], cap: int = 10) -> IssueContent:
    # The issue's own order: most decisive panel first (stable for ties).
    ordered = sorted(
        datas, key=lambda d: -abs(d.tools[0].panel_ship_pct - d.tools[1].panel_ship_pct)
    )
    found = verdicts.week_verdicts([(transient(d, i + 1), None) for i, d in enumerate(ordered)])
    content = assemble("2026-W10", found)
    return dataclasses.replace(
        content,
        featured=[FeaturedMatchup(v, v.sentences, False) for v in found[:cap]],
        more=found[cap:],
    )


def add_matchups(session: Session, datas: list[MatchupData], at: datetime) -> list[Matchup]:
    found = [import_matchup(session, d, at)[0] for d in datas]
    session.commit()
    return found


def send_week(session: Session, week: str, now: datetime) -> int:
    """Build, approve and send one week's issue as an editor does (the CLI, the outbox)."""
    from newsletter.issues import service as issues
    from tests.subscribers.helpers import cli

    issue = issues.build_issue(session, week, now=now)
    session.commit()
    for command in (("issue", "approve", str(issue.id)), ("issue", "send", str(issue.id))):
        result = cli(*command)
        assert result.exit_code == 0, result.output
    return issue.id


def text_of(message: EmailMessage) -> str:
    return str(message.get_body(("plain",)).get_content())  # type: ignore[union-attr]


def html_of(message: EmailMessage) -> str:
    return str(message.get_body(("html",)).get_content())  # type: ignore[union-attr]


def vote_links(message: EmailMessage) -> dict[str, str]:
    """Tool name -> the vote URL, as the reader finds them in the text part of their copy."""
    return dict(re.findall(r"Vote \"I'd ship (.+?)\": (\S+)", text_of(message)))


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)
