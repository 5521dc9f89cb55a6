"""Public pages for readers: the archive of sent issues, its Atom feed, and each issue's web
version (the email's "view in browser" link).

The web version is the untracked render with a token no delivery has: opening it records
nothing and carries no one's identity, so the page can be shared.
"""

from __future__ import annotations

from datetime import datetime
from xml.etree import ElementTree as ET

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from newsletter.db import transaction
from newsletter.issues import repository as issues_repository
from newsletter.issues import service as issues
from newsletter.issues.models import Issue, IssueStatus
from newsletter.orm import utcnow
from newsletter.settings import get_settings
from newsletter.tracking.service import readers_vs_panel
from newsletter.web.headers import EMAIL_PREVIEW_CSP
from newsletter.web.pages import render

router = APIRouter(tags=["archive"], include_in_schema=False)

PUBLISHED = (IssueStatus.SENDING, IssueStatus.PAUSED, IssueStatus.SENT)
ATOM = "http://www.w3.org/2005/Atom"


def _published(session: Session) -> list[Issue]:
    return [i for i in issues_repository.list_all(session) if i.status in PUBLISHED]


def _when(issue: Issue) -> datetime:
    return issue.sent_at or issue.send_started_at or issue.updated_at


@router.get("/issues", response_class=HTMLResponse)
def archive(request: Request) -> Response:
    with transaction() as session:
        rows = [
            {
                "week": i.week,
                "subject": i.rendered_subject or i.week,
                "preheader": i.rendered_preheader or "",
                "date": _when(i),
                "readers": readers_vs_panel(session, i.id, i.week),
            }
            for i in _published(session)
        ]
    return render(request, "web/archive/index.html", {"rows": rows})


@router.get("/issues/feed.atom")
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
    ET.SubElement(root, f"{{{ATOM}}}id").text = f"{base}/issues"
    ET.SubElement(root, f"{{{ATOM}}}link", rel="self", href=f"{base}/issues/feed.atom")
    ET.SubElement(root, f"{{{ATOM}}}link", rel="alternate", href=f"{base}/issues")
    updated = max((e[3] for e in entries), default=utcnow())
    ET.SubElement(root, f"{{{ATOM}}}updated").text = updated.isoformat()
    author = ET.SubElement(root, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = settings.newsletter_from_name
    for week, title, summary, when in entries:
        entry = ET.SubElement(root, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}title").text = title
        ET.SubElement(entry, f"{{{ATOM}}}id").text = f"{base}/issues/{week}"
        ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", href=f"{base}/issues/{week}")
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = when.isoformat()
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = summary or title
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/atom+xml; charset=utf-8")


@router.get("/issues/{week}", response_class=HTMLResponse)
def web_version(week: str) -> Response:
    with transaction() as session:
        issue = issues_repository.get_by_week(session, week)
        html = issues.public_html(session, week) if issue and issue.status in PUBLISHED else None
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
