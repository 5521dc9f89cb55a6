"""Public pages for readers: the home page, the archive of sent issues, its Atom feed, each
issue's web version (the email's "view in browser" link) and its public vote page.

The web version is the public render (`issues.service.public_html`): opening it records nothing
and it carries no one's links, so it can be forwarded and shared. Its vote buttons lead to the
public vote page, which shows the readers' split and how to vote: votes are counted from
subscribers' own copies only (one per reader per matchup), so an anonymous page cannot stuff
the community figure that flows back to the site.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote
from xml.etree import ElementTree as ET

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from newsletter import paths
from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.issues.models import SEND_STARTED, Issue
from newsletter.orm import utcnow
from newsletter.settings import get_settings
from newsletter.votes import service as votes
from newsletter.votes.service import community_split
from newsletter.web.headers import EMAIL_PREVIEW_CSP
from newsletter.web.pages import render

router = APIRouter(tags=["archive"], include_in_schema=False)

ATOM = "http://www.w3.org/2005/Atom"


def _published(session: Session) -> list[Issue]:
    return [i for i in issues.list_all(session) if i.status in SEND_STARTED]


def _when(issue: Issue) -> datetime:
    return issue.sent_at or issue.send_started_at or issue.updated_at


def _rows(session: Session) -> list[dict[str, object]]:
    return [
        {
            "url": paths.web_version(i.week),
            "week": i.week,
            "subject": i.rendered_subject or i.week,
            "preheader": i.rendered_preheader or "",
            "date": _when(i),
            "readers": votes.readers_vs_panel(
                session, i.week, issues.issue_matchups(session, i.id)
            ),
        }
        for i in _published(session)
    ]


@router.get(paths.HOME, response_class=HTMLResponse)
def home(request: Request) -> Response:
    """What someone who types the address sees: the latest issue, the archive, a sign-up."""
    with transaction() as session:
        rows = _rows(session)
    return render(request, "web/archive/home.html", {"latest": rows[:1], "recent": rows[1:6]})


@router.get(paths.ARCHIVE, response_class=HTMLResponse)
def archive(request: Request) -> Response:
    with transaction() as session:
        rows = _rows(session)
    return render(request, "web/archive/index.html", {"rows": rows})


@router.get(paths.FEED)
def feed() -> Response:
    settings = get_settings()
    base = settings.newsletter_base_url.rstrip("/")
    with transaction() as session:
        published = _published(session)[:50]
        entries = [
            (i.week, i.rendered_subject or i.week, i.rendered_preheader or "", _when(i))
            for i in published
        ]
    ET.register_namespace("", ATOM)
    root = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(root, f"{{{ATOM}}}title").text = settings.newsletter_from_name
    ET.SubElement(root, f"{{{ATOM}}}id").text = base + paths.ARCHIVE
    ET.SubElement(root, f"{{{ATOM}}}link", rel="self", href=base + paths.FEED)
    ET.SubElement(root, f"{{{ATOM}}}link", rel="alternate", href=base + paths.ARCHIVE)
    updated = max((e[3] for e in entries), default=utcnow())
    ET.SubElement(root, f"{{{ATOM}}}updated").text = updated.isoformat()
    author = ET.SubElement(root, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = settings.newsletter_from_name
    for week, title, summary, when in entries:
        entry = ET.SubElement(root, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}title").text = title
        url = base + paths.web_version(week)
        ET.SubElement(entry, f"{{{ATOM}}}id").text = url
        ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", href=url)
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = when.isoformat()
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = summary or title
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.get(paths.WEB_VERSION_PATTERN, response_class=HTMLResponse)
def web_version(request: Request, week: str) -> Response:
    with transaction() as session:
        issue = issues.get_by_week(session, week)
        html = issues.public_html(session, week) if issue and issue.status in SEND_STARTED else None
        coming = issue is not None and issue.status in issues.EDITABLE
    if html is None and coming:
        # The "view in browser" link of a preview or a test copy: the address is the one the
        # issue will have, so it answers, saying when, instead of a 404 the tester can't place.
        context = {"week": week, "rows": []}
        return render(
            request, "web/archive/coming.html", context, headers={"Cache-Control": "no-store"}
        )
    if html is None:
        raise HTTPException(status_code=404, detail=f"There is no published issue for {week}.")
    # The email as sent, as its own responsive page: inline styles allowed, no script at all.
    headers = {
        "Content-Security-Policy": EMAIL_PREVIEW_CSP.replace(
            "frame-ancestors 'self'", "frame-ancestors 'none'"
        ),
        "Cache-Control": "public, max-age=300",
    }
    return HTMLResponse(html, headers=headers)


@router.get(paths.PUBLIC_VOTE_PATTERN, response_class=HTMLResponse)
def public_vote(request: Request, week: str, slug: str) -> Response:
    """Where the web version's vote buttons lead: the readers' split so far, the full matchup
    on the site, and a subscription (a subscriber's own copy carries their vote links)."""
    settings = get_settings()
    with transaction() as session:
        issue = issues.get_by_week(session, week)
        matchup = None
        if issue is not None and issue.status in SEND_STARTED:
            included = {i.matchup_id for i in issue.items if not i.excluded}
            found = issues.matchups_of(session, issue)
            matchup = next((m for m in found.values() if m.slug == slug and m.id in included), None)
        if issue is None or matchup is None:
            raise HTTPException(
                status_code=404,
                detail=f"No matchup {slug[:80]!r} in a published issue {week[:20]!r}.",
            )
        pct, votes = community_split(session, matchup.id)
        context = {
            "week": issue.week,
            "web_version": paths.web_version(issue.week),
            "title": matchup.title,
            "names": [tool.name for tool in sorted(matchup.tools, key=lambda t: t.position)],
            "split": None if pct is None else [pct, 100 - pct],
            "votes": votes,
            "site_url": f"{settings.newsletter_site_url.rstrip('/')}/matchups/{quote(matchup.slug)}",
        }
    return render(request, "web/archive/vote.html", context)
