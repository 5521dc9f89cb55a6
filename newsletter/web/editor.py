"""Editor pages: the issues list, one issue's editor with its live preview, actions and numbers.

Routes stay thin: every read and change goes through the issues, sending and tracking services
(CONTRACTS.md); each request owns one transaction. A refused action (an `IssueError`, a lost
race) comes back to the issue page as a notice that says why.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from html import escape
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from sqlalchemy.orm import Session

from newsletter import paths
from newsletter.audience import subject_tests
from newsletter.db import transaction
from newsletter.errors import Refused
from newsletter.issues import service as issues
from newsletter.issues import verdicts
from newsletter.issues.models import IN_SEND, SEND_STARTED, Issue, IssueStatus
from newsletter.issues.subjects import MAX_SUBJECTS
from newsletter.matchups.service import categories, categories_named
from newsletter.numbers import ascii_int
from newsletter.orm import utcnow
from newsletter.scheduling import status as scheduler_status
from newsletter.sending.service import SendError, skipped_reasons
from newsletter.settings import get_settings
from newsletter.web import charts, csrf
from newsletter.web.auth import Staff, require_staff
from newsletter.web.headers import EMAIL_PREVIEW_CSP
from newsletter.web.pages import CONFIRMED, confirm_page, flash, redirect, render
from newsletter.web.textinput import unstorable

router = APIRouter(
    prefix="/admin",
    dependencies=[Depends(require_staff), Depends(csrf.require_csrf)],
    include_in_schema=False,
)


def _issue_or_404(session: Session, issue_id: int) -> Issue:
    issue = issues.get(session, issue_id)
    if issue is None:
        raise HTTPException(status_code=404, detail=f"There is no issue {issue_id}.")
    return issue


def _progress(session: Session, issue_id: int) -> dict[str, int]:
    from newsletter.sending.service import status_counts

    counts = dict(status_counts(session, issue_id))
    recipients = counts.get("recipients", 0)
    done = sum(counts.get(k, 0) for k in ("sent", "failed", "uncertain", "skipped"))
    counts["done"] = done
    counts["percent"] = round(100 * done / recipients) if recipients else 0
    return counts


def _act(
    request: Request,
    issue_id: int,
    action: Callable[[Session], str],
    anchor: str = "actions-h",
    query: Callable[[], str] = str,
) -> Response:
    """Run one state change in its own transaction and come back to the issue page, scrolled
    to the section the editor was working in; `query()`, asked once the action has run, adds
    to the address (the topics a test copy was for)."""
    try:
        with transaction() as session:
            _issue_or_404(session, issue_id)
            message = action(session)
        flash(request, message)
    except (Refused, SendError) as exc:
        flash(request, str(exc), "error")
    return redirect(paths.editor_issue(issue_id) + query() + f"#{quote(anchor)}")


@router.get("", include_in_schema=False)
def home() -> Response:
    return redirect(paths.EDITOR_ISSUES)


@router.get("/issues", response_class=HTMLResponse)
def issues_list(request: Request) -> Response:
    with transaction() as session:
        rows = []
        for issue in issues.list_all(session):
            progress = _progress(session, issue.id) if issue.status in IN_SEND else None
            rows.append({"issue": issue, "progress": progress})
    live = any(row["progress"] is not None for row in rows)
    return render(request, "web/editor/issues.html", {"rows": rows, "live": live})


@router.post("/issues/build")
def build(request: Request) -> Response:
    try:
        with transaction() as session:
            result = issues.build(session)
            issue_id = result.issue.id
            refreshed = result.refreshed
        flash(
            request,
            f"Issue {result.issue.week} rebuilt from this week's matchups."
            if refreshed
            else f"Issue {result.issue.week} is already {result.issue.status.value}; left as is.",
        )
    except issues.IssueError as exc:
        flash(request, str(exc), "error")
        return redirect(paths.EDITOR_ISSUES)
    return redirect(paths.editor_issue(issue_id))


def _items(session: Session, issue: Issue) -> list[dict[str, Any]]:
    matchups = issues.matchups_of(session, issue)
    rows = []
    for item in issue.items:
        matchup = matchups[item.matchup_id]
        computed = verdicts.verdict(matchup).sentences
        rows.append(
            {
                "slug": matchup.slug,
                "title": matchup.title,
                "position": item.position,
                "pinned": item.position_override is not None,
                "excluded": item.excluded,
                "summary": item.summary_override or computed,
                "edited": item.summary_override is not None,
            }
        )
    return rows


# "Preview for readers of…": the topics ticked, as `?topics=A&topics=B`. A week has at most
# 62 categories a variant can name; a longer list is not a person's.
MAX_PREVIEW_TOPICS = 100
TopicsQuery = Annotated[
    list[str] | None,
    Query(max_length=200, description="Preview as a reader of these topics gets the issue."),
]


def _variant(session: Session, issue_id: int, topics: list[str]) -> issues.Variant:
    if len(topics) > MAX_PREVIEW_TOPICS:
        raise HTTPException(status_code=400, detail=f"At most {MAX_PREVIEW_TOPICS} topics.")
    try:
        return issues.variant_preview(session, issue_id, topics)
    except Refused as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


@router.get(paths.EDITOR_ISSUE_PATTERN.removeprefix(paths.ADMIN_HOME), response_class=HTMLResponse)
def issue_page(
    request: Request, issue_id: int, staff: Staff, topics: TopicsQuery = None
) -> Response:
    settings = get_settings()
    with transaction() as session:
        issue = _issue_or_404(session, issue_id)
        content = issues.content(session, issue)
        variant = _variant(session, issue_id, topics) if topics is not None else None
        if variant is None or not variant.topics:
            variant = None
            _, text = _saved_preview(session, issue)
        else:
            text = variant.text
        progress = _progress(session, issue_id) if issue.status in SEND_STARTED else None
        uncertain = _uncertain(session, issue_id) if progress and progress.get("uncertain") else []
        healing = _healing(session, issue_id) if progress else None
        skipped = skipped_reasons(session, issue_id) if progress and progress.get("skipped") else []
        zone = ZoneInfo(settings.newsletter_timezone)
        audience = _audience(session, issue)
        subject_test = subject_tests.report(session, issue_id)
        planned = scheduler_status.planned_send_for(session, issue_id)
        idle = _scheduler_idle(session, issue, planned)
        context = {
            "issue": issue,
            "content": content,
            "items": _items(session, issue),
            "text": text,
            "progress": progress,
            "uncertain": uncertain,
            "healing": healing,
            "skipped": skipped,
            "planned_local": planned.astimezone(zone) if planned else None,
            "scheduler_idle": idle,
            "editable": issue.status in issues.EDITABLE,
            "variant": variant,
            # Every topic readers can choose, those with nothing this week too: their readers
            # get no mail, and the editor can see so.
            "topic_choices": categories(session),
            "preview_query": (
                "?" + urlencode([("topics", t) for t in variant.topics]) if variant else ""
            ),
            "matchup_count": len([i for i in issue.items if not i.excluded]),
            "audience": audience,
            "subject_test": subject_test,
            "max_subjects": MAX_SUBJECTS,
            "me": staff.email,
            "timezone": settings.newsletter_timezone,
            "scheduled_local": (
                issue.scheduled_at.astimezone(ZoneInfo(settings.newsletter_timezone))
                if issue.scheduled_at
                else None
            ),
        }
    return render(request, "web/editor/issue.html", context)


def _audience(session: Session, issue: Issue) -> dict[str, Any]:
    """Who the issue goes to, for its page: what a started send went to (as written then), or
    the segment chosen and how many it would reach now, with the segments to choose from."""
    from newsletter.audience import service as audiences

    if issue.audience is not None or (issue.status in SEND_STARTED and issue.segment_id is None):
        return {"sent_to": issue.audience or {}, "choices": []}
    choices = [(s.id, s.name) for s in audiences.all_segments(session)]
    if issue.segment_id is None:
        # Everyone: counted on the send's confirmation, not on every view of the page (a count
        # of a million-row list).
        return {"segment_id": None, "choices": choices}
    try:
        segment, count = audiences.audience_of(session, issue.id)
    except audiences.SegmentError as exc:
        return {"missing": str(exc), "choices": choices, "segment_id": issue.segment_id}
    assert segment is not None
    return {
        "segment_id": segment.id,
        "name": segment.name,
        "described": audiences.rule_of(segment).describe(),
        "count": count,
        "choices": choices,
    }


def _withdrawn(reopened: bool) -> str:
    """The end of a flash after a change that took the approval back (an audience, a test)."""
    return " Its approval was withdrawn: approve it again." if reopened else ""


@router.post("/issues/{issue_id}/audience")
def set_audience(
    request: Request, issue_id: int, segment: Annotated[str, Form(max_length=20)] = ""
) -> Response:
    """Send the issue to a segment, or to everyone (empty); an approval is withdrawn."""
    from newsletter.audience import service as audiences

    wanted = segment.strip()
    if wanted and not (wanted.isascii() and wanted.isdigit() and len(wanted) <= 18):
        raise HTTPException(status_code=400, detail=f"{wanted[:20]!r} is not a segment id.")

    def action(session: Session) -> str:
        segment_id = int(wanted) if wanted else None
        reopened = audiences.set_issue_audience(session, issue_id, segment_id)
        segment_now, count = audiences.audience_of(session, issue_id)
        whom = f"segment “{segment_now.name}”" if segment_now else "everyone"
        back = _withdrawn(reopened)
        return f"Issue {issue_id} now goes to {whom}: {count:,} subscribers today.{back}"

    return _act(request, issue_id, action, anchor="audience-h")


SubjectField = Annotated[str, Form(max_length=2000)]


@router.post("/issues/{issue_id}/subject-test")
def set_subject_test(
    request: Request,
    issue_id: int,
    staff: Staff,
    subject1: SubjectField = "",
    subject2: SubjectField = "",
    subject3: SubjectField = "",
    subject4: SubjectField = "",
    share: Annotated[str, Form(max_length=40)] = "",
    wait: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Try two to four subjects on a share of the audience; an approval is withdrawn."""

    def action(session: Session) -> str:
        given = share.strip().removesuffix("%").strip()
        sign, digits = (given[:1], given[1:]) if given[:1] in ("-", "+") else ("", given)
        number = ascii_int(digits, max_digits=40)
        if number is None:
            raise subject_tests.SubjectTestError(
                f"the test share {share[:40]!r} is not a whole number of percent"
            )
        reopened = subject_tests.set_test(
            session,
            issue_id,
            [subject1, subject2, subject3, subject4],
            share=-number if sign == "-" else number,
            wait_minutes=subject_tests.parse_wait(wait),
            by=staff.email,
            skip_blank=True,
        )
        back = _withdrawn(reopened)
        return f"Subject test saved for issue {issue_id}.{back}"

    return _act(request, issue_id, action, anchor="subject-test-h")


@router.post("/issues/{issue_id}/subject-test/remove")
def remove_subject_test(request: Request, issue_id: int) -> Response:
    def action(session: Session) -> str:
        if subject_tests.get(session, issue_id) is None:
            raise subject_tests.SubjectTestError(f"issue {issue_id} has no subject test")
        reopened = subject_tests.remove_test(session, issue_id)
        back = _withdrawn(reopened)
        return f"Issue {issue_id} has one subject again.{back}"

    return _act(request, issue_id, action, anchor="subject-test-h")


@router.post("/issues/{issue_id}/subject-test/winner")
def pick_subject(
    request: Request,
    issue_id: int,
    staff: Staff,
    winner: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Send subject N to everyone else now (the editor's pick), before the wait is over."""

    def action(session: Session) -> str:
        number = ascii_int(winner.strip(), max_digits=2)
        if number is None:
            raise subject_tests.SubjectTestError(f"{winner[:20]!r} is not a subject's number")
        decision = subject_tests.decide(
            session, issue_id, winner=number, by=f"editor {staff.email}"
        )
        if decision is None:
            raise subject_tests.SubjectTestError(
                f"issue {issue_id}'s subject test was decided already"
            )
        return (
            f"Subject {decision.winner} (“{decision.subject}”) goes to everyone else: "
            f"{decision.rest:,} more deliveries queued for the scheduler's workers."
        )

    return _act(request, issue_id, action, anchor="subject-test-h")


# A scheduler ticks every NEWSLETTER_TICK_SECONDS (30 by default); three missed ticks, or two
# minutes, whichever is longer, and the page says nothing is going out.
def _scheduler_idle(session: Session, issue: Issue, planned: datetime | None) -> str | None:
    """Why nothing will happen to this issue on its own, or None: sends (planned, scheduled,
    started) are performed by `python scheduler.py`, not by the web app. `planned` is when the
    weekly run plans to send it."""
    waiting = issue.status in (IssueStatus.SCHEDULED, IssueStatus.SENDING) or (
        issue.status is IssueStatus.APPROVED and planned is not None
    )
    if not waiting:
        return None
    seen = scheduler_status.last_seen(session)
    limit = max(120, 3 * get_settings().newsletter_tick_seconds)
    if seen is not None and (utcnow() - seen).total_seconds() <= limit:
        return None
    when = "has ever run" if seen is None else f"has run since {seen:%Y-%m-%d %H:%M} UTC"
    return (
        f"No scheduler {when}: nothing goes out until `python scheduler.py` runs beside the "
        "web app (the send itself is done by the scheduler, not by this page)."
    )


def _saved_preview(session: Session, issue: Issue) -> tuple[str, str]:
    # A draft is rendered as it stands without recording its links (a page view must not
    # write); a frozen issue shows what will be sent.
    if issue.status is IssueStatus.DRAFT:
        return issues.draft_preview(session, issue.id, issues.Draft())
    return issues.preview(session, issue.id)


@router.get("/issues/{issue_id}/preview.html")
def preview_html(issue_id: int, topics: TopicsQuery = None) -> Response:
    """The email exactly as a subscriber's client gets it, for the preview frames; with
    `topics`, as a reader of those topics gets it."""
    with transaction() as session:
        issue = _issue_or_404(session, issue_id)
        variant = _variant(session, issue_id, topics) if topics else None
        if variant is not None and variant.empty:
            html = NO_MAIL_PAGE.format(topics=escape(", ".join(variant.topics)))
        elif variant is not None:
            html = variant.html
        else:
            html, _ = _saved_preview(session, issue)
    return HTMLResponse(
        html, headers={"Content-Security-Policy": EMAIL_PREVIEW_CSP, "Cache-Control": "no-store"}
    )


NO_MAIL_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>No mail</title></head>'
    '<body style="font-family:sans-serif;padding:1em"><p>Readers of {topics} get no mail this '
    "week: none of this issue's matchups is in their topics, and their delivery is skipped."
    "</p></body></html>"
)
NO_MAIL_TEXT = (
    "Readers of {topics} get no mail this week: none of this issue's matchups is in their "
    "topics, and their delivery is skipped.\n"
)


@router.get("/issues/{issue_id}/progress.json")
def progress_json(issue_id: int) -> JSONResponse:
    with transaction() as session:
        issue = _issue_or_404(session, issue_id)
        body: dict[str, Any] = {"status": issue.status.value, **_progress(session, issue_id)}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _draft_form(
    subject: Annotated[str, Form(max_length=500)] = "",
    preheader: Annotated[str, Form(max_length=500)] = "",
    intro: Annotated[str, Form(max_length=5000)] = "",
    original_subject: Annotated[str, Form(max_length=500)] = "",
    original_preheader: Annotated[str, Form(max_length=500)] = "",
    original_intro: Annotated[str, Form(max_length=5000)] = "",
    slug: Annotated[list[str] | None, Form()] = None,
    summary: Annotated[list[str] | None, Form()] = None,
    original_summary: Annotated[list[str] | None, Form()] = None,
    position: Annotated[list[str] | None, Form()] = None,
    original_position: Annotated[list[str] | None, Form()] = None,
    excluded: Annotated[list[str] | None, Form()] = None,
    was_excluded: Annotated[list[str] | None, Form()] = None,
) -> issues.Draft:
    """The edit form as a draft: only what the editor changed (a field whose text differs
    from the one the page showed); untouched text stays computed. The live preview and the
    save read the form the same way."""
    slugs = slug or []
    summaries, originals = summary or [], original_summary or []
    # Positions are optional: the page reorders with buttons, older forms and scripts type them.
    positions = position or [""] * len(slugs)
    original_positions = original_position or [""] * len(slugs)
    if not (
        len(slugs) == len(summaries) == len(originals) == len(positions) == len(original_positions)
    ):
        raise HTTPException(
            status_code=400, detail="The matchup fields of this form do not line up."
        )
    texts = [subject, preheader, intro, *slugs, *summaries, *(excluded or [])]
    if any(_unstorable(value) for value in texts) or len(slugs) > 200:
        raise HTTPException(
            status_code=400,
            detail="The form has a NUL or an unpaired surrogate character, or too many matchups.",
        )
    if any(len(value) > 20_000 for value in summaries):
        raise HTTPException(status_code=400, detail="A summary is longer than 20,000 characters.")
    leave_out, left_out = set(excluded or []), set(was_excluded or [])
    draft = issues.Draft()
    for name, value, before in (
        ("subject", subject, original_subject),
        ("preheader", preheader, original_preheader),
        ("intro", intro, original_intro),
    ):
        if value.strip() != before.strip():
            setattr(draft, name, value.strip())
    for index, matchup_slug in enumerate(slugs):
        edit = issues.MatchupDraft()
        if summaries[index].strip() != originals[index].strip():
            edit.summary = summaries[index]
        if positions[index].strip() != original_positions[index].strip():
            edit.position = _position(positions[index], matchup_slug)
        if (matchup_slug in leave_out) != (matchup_slug in left_out):
            edit.excluded = matchup_slug in leave_out
        if edit != issues.MatchupDraft():
            draft.matchups[matchup_slug] = edit
    return draft


def _unstorable(value: str) -> bool:
    return unstorable(value) is not None


DraftForm = Annotated[issues.Draft, Depends(_draft_form)]


def _save(session: Session, issue_id: int, draft: issues.Draft) -> tuple[int, bool]:
    """Store the draft's changes; (how many things changed, whether approval was withdrawn)."""
    edits, reopened = 0, False
    fields = {
        name: value
        for name in ("subject", "preheader", "intro")
        if (value := getattr(draft, name)) is not None
    }
    if fields:
        edits += 1
        reopened |= issues.edit_issue(session, issue_id, **fields)
    for matchup_slug, edit in draft.matchups.items():
        edits += 1
        reopened |= issues.edit_matchup(
            session,
            issue_id,
            matchup_slug,
            summary=edit.summary,
            position=edit.position,
            excluded=edit.excluded,
        )
    return edits, reopened


@router.post("/issues/{issue_id}/edit")
def edit(
    request: Request,
    issue_id: int,
    draft: DraftForm,
    move: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Save the form. `move` ("SLUG up", "SLUG down" or "auto") is the reorder button that
    submitted it: the edits are saved first, so nothing typed is lost by moving."""
    target, _, direction = move.rpartition(" ")
    if move and move != "auto" and direction not in ("up", "down"):
        raise HTTPException(status_code=400, detail="move must be 'SLUG up', 'SLUG down' or auto.")

    def change(session: Session) -> str:
        edits, reopened = _save(session, issue_id, draft)
        moved = ""
        if move == "auto":
            issue = _issue_or_404(session, issue_id)
            for item in _items(session, issue):
                if item["pinned"]:
                    reopened |= issues.edit_matchup(session, issue_id, item["slug"], position=0)
            moved = " Back to the automatic order (most decisive first)."
        elif move:
            step = -1 if direction == "up" else 1
            reopened |= issues.move_matchup(session, issue_id, target, step)
            moved = f" Moved {direction}."
        if not edits and not moved:
            return "Nothing changed."
        if reopened:
            return (
                "Saved. The approval was withdrawn because the content changed: approve it again."
                + moved
            )
        return "Saved; the preview below shows the new version." + moved

    anchor = f"matchup-{target}" if move and move != "auto" else "edit-h"
    return _act(request, issue_id, change, anchor)


def _draft_render(issue_id: int, draft: issues.Draft, topics: list[str] | None) -> issues.Variant:
    if topics is not None and len(topics) > MAX_PREVIEW_TOPICS:
        raise HTTPException(status_code=400, detail=f"At most {MAX_PREVIEW_TOPICS} topics.")
    with transaction() as session:
        _issue_or_404(session, issue_id)
        try:
            return issues.draft_variant_preview(session, issue_id, draft, topics or [])
        except Refused as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None


@router.post("/issues/{issue_id}/preview.html")
def draft_preview_html(issue_id: int, draft: DraftForm, topics: TopicsQuery = None) -> Response:
    """The email as the form stands, unsaved: the edit form posts here into the preview frames
    (as they type, or with the "Preview without saving" button without script); with
    `topics`, as readers of those topics would get it. Same sandbox as the GET."""
    variant = _draft_render(issue_id, draft, topics)
    html = variant.html
    if variant.empty:
        html = NO_MAIL_PAGE.format(topics=escape(", ".join(variant.topics)))
    return HTMLResponse(
        html, headers={"Content-Security-Policy": EMAIL_PREVIEW_CSP, "Cache-Control": "no-store"}
    )


@router.post("/issues/{issue_id}/preview.txt")
def draft_preview_text(issue_id: int, draft: DraftForm, topics: TopicsQuery = None) -> Response:
    variant = _draft_render(issue_id, draft, topics)
    text = variant.text
    if variant.empty:
        text = NO_MAIL_TEXT.format(topics=", ".join(variant.topics))
    return PlainTextResponse(text, headers={"Cache-Control": "no-store"})


def _position(raw: str, slug: str) -> int:
    if not raw.strip():
        return 0
    if not raw.strip().isascii() or not raw.strip().isdigit() or len(raw.strip()) > 6:
        raise HTTPException(
            status_code=400, detail=f"position for {slug} must be a whole number, got {raw[:40]!r}"
        )
    value = int(raw)
    if value < 1:
        raise HTTPException(
            status_code=400, detail=f"position for {slug} must be 1 or more, got {value}"
        )
    return value


@router.post("/issues/{issue_id}/test")
def send_test(
    request: Request,
    issue_id: int,
    staff: Staff,
    to: Annotated[str, Form(max_length=2000)] = "",
    topics: Annotated[list[str] | None, Form()] = None,
) -> Response:
    from newsletter.sending import service as sending

    # Every ticked topic (a `max_length` on the form field made FastAPI keep only the last).
    chosen = topics or []
    if len(chosen) > MAX_PREVIEW_TOPICS or any(len(t) > 200 for t in chosen):
        raise HTTPException(
            status_code=400, detail=f"At most {MAX_PREVIEW_TOPICS} topics of 200 characters."
        )

    named: list[str] = []  # the topics as the site spells them, once they are known good

    def action(session: Session) -> str:
        named.extend(categories_named(session, chosen))
        addresses = sending.test_addresses([to or staff.email])
        results = sending.send_test(session, issue_id, addresses, topics=chosen)
        refused = [f"{address}: {r.error}" for address, r in results if not r.ok]
        if refused:
            raise issues.IssueError("The test was not sent to " + "; ".join(refused))
        copy = f" (the copy readers of {', '.join(named)} get)" if named else ""
        return f"Test sent to {', '.join(addresses)}{copy}."

    def back_to_their_preview() -> str:
        # Back to the preview of those readers (a name that is no topic: to the whole issue).
        return "?" + urlencode([("topics", t) for t in named]) if named else ""

    return _act(request, issue_id, action, query=back_to_their_preview)


@router.post("/issues/{issue_id}/approve")
def approve(request: Request, issue_id: int, staff: Staff) -> Response:
    def action(session: Session) -> str:
        issue = issues.approve(session, issue_id, by=staff.email)
        return f"Issue {issue.week} approved: its content is frozen for sending."

    return _act(request, issue_id, action)


@router.post("/issues/{issue_id}/schedule")
def schedule(request: Request, issue_id: int, at: Annotated[str, Form(max_length=100)]) -> Response:
    def action(session: Session) -> str:
        issue = issues.schedule(session, issue_id, issues.parse_send_time(at))
        assert issue.scheduled_at is not None
        return f"Issue {issue.week} scheduled for {issues.local_time(issue.scheduled_at)}."

    return _act(request, issue_id, action)


@router.get("/issues/{issue_id}/send", include_in_schema=False)
def send_now_reloaded(issue_id: int) -> Response:
    """A reload or a bookmark of the confirmation: back to the issue's actions (only the
    button's POST sends)."""
    return redirect(paths.editor_issue(issue_id) + "#actions-h")


@router.post("/issues/{issue_id}/send", response_class=HTMLResponse)
def send_now(
    request: Request,
    issue_id: int,
    confirmed: Annotated[int | None, Form(ge=0, le=10**12)] = None,
) -> Response:
    """Two steps: the first POST says how many people would get the issue and asks; the
    second (with the count the editor saw) starts the send. The scheduler's workers deliver it
    (`python scheduler.py`); the page then shows the progress."""
    from newsletter.audience import service as audiences

    with transaction() as session:
        issue = _issue_or_404(session, issue_id)
        try:
            segment, audience = audiences.audience_of(session, issue_id)
        except audiences.SegmentError as exc:
            flash(request, str(exc), "error")
            return redirect(paths.editor_issue(issue_id) + "#audience-h")
        if issue.status in (IssueStatus.APPROVED, IssueStatus.SCHEDULED) and (
            confirmed is None or confirmed != audience
        ):
            context = {
                "issue": issue,
                "audience": audience,
                "segment": segment.name if segment else None,
                "changed_from": confirmed,
                "subject": issue.rendered_subject,
                "subject_test": subject_tests.get(session, issue_id),
            }
            return render(
                request,
                "web/editor/send_confirm.html",
                context,
                status_code=200 if confirmed is None else 409,
            )

    def action(session: Session) -> str:
        issue = _issue_or_404(session, issue_id)
        if issue.status not in (IssueStatus.APPROVED, IssueStatus.SCHEDULED):
            raise issues.IssueError(
                f"Issue {issue.week} is {issue.status.value}: only an approved or scheduled "
                "issue can be sent."
            )
        if not audiences.start_send(session, issue_id):
            raise issues.IssueError(f"Issue {issue.week} changed state meanwhile; not sent.")
        whom = f" of segment “{segment.name}”" if segment else ""
        test = subject_tests.get(session, issue_id)
        if test is not None:
            return (
                f"Sending issue {issue.week}'s subject test to {test.share}% of its {audience:,} "
                f"subscribers{whom}: the winner goes to the rest after "
                f"{subject_tests.wait_text(test.wait_minutes)}; figures below."
            )
        return (
            f"Sending issue {issue.week} to {audience:,} subscribers{whom}: the scheduler's workers "
            "deliver it; progress below."
        )

    return _act(request, issue_id, action)


@router.post("/issues/{issue_id}/unschedule")
def unschedule(request: Request, issue_id: int) -> Response:
    def action(session: Session) -> str:
        issue = issues.unschedule(session, issue_id)
        return (
            f"Issue {issue.week} unscheduled: it is back to approved, content unchanged. "
            "Schedule it again or send it now."
        )

    return _act(request, issue_id, action)


@router.get("/issues/{issue_id}/cancel", response_class=HTMLResponse)
def cancel_page(request: Request, issue_id: int) -> Response:
    with transaction() as session:
        issue = _issue_or_404(session, issue_id)
        week, status = issue.week, issue.status
        progress = _progress(session, issue_id) if status in IN_SEND else None
    if progress is not None:
        left = progress.get("queued", 0) + progress.get("in_flight", 0)
        consequences = [
            f"{progress.get('sent', 0)} already sent stay sent.",
            f"About {left} not handed to SendGrid yet will be skipped, with the reason recorded.",
        ]
    else:
        consequences = ["Nobody gets it; a cancelled issue cannot be sent again."]
    return confirm_page(
        request,
        title=f"Cancel issue {week}?",
        question=f"Issue {week} is {status.value}.",
        consequences=consequences,
        action=paths.editor_issue(issue_id) + "/cancel",
        button="Yes, cancel this issue",
        back=paths.editor_issue(issue_id),
    )


@router.post("/issues/{issue_id}/cancel")
def cancel(
    request: Request, issue_id: int, confirmed: Annotated[str, Form(max_length=10)] = ""
) -> Response:
    from newsletter.sending import service as sending

    if confirmed != CONFIRMED:
        return redirect(paths.editor_issue(issue_id) + "/cancel")

    def action(session: Session) -> str:
        issue = _issue_or_404(session, issue_id)
        during = issue.status in IN_SEND
        week, skipped = sending.cancel(session, issue_id)
        if during:
            return f"Sending cancelled: {skipped} deliveries not yet handed off were skipped."
        return f"Issue {week} cancelled."

    return _act(request, issue_id, action)


@router.post("/issues/{issue_id}/pause")
def pause(request: Request, issue_id: int) -> Response:
    from newsletter.sending import service as sending

    def action(session: Session) -> str:
        sending.pause(session, issue_id)
        return "Sending paused: batches already handed to SendGrid finish, no new ones start."

    return _act(request, issue_id, action)


@router.post("/issues/{issue_id}/resume")
def resume(request: Request, issue_id: int) -> Response:
    from newsletter.sending import service as sending

    def action(session: Session) -> str:
        sending.resume(session, issue_id)
        return "Sending resumed."

    return _act(request, issue_id, action)


def _healing(session: Session, issue_id: int) -> dict[str, Any]:
    """How once-uncertain deliveries were settled, and what the uncertain ones wait for."""
    from newsletter.sending import service as sending

    zone = ZoneInfo(get_settings().newsletter_timezone)
    waiting = sending.heal_uncertain(session, issue_id=issue_id, act=False).waiting
    return {
        "settled": sending.settled_counts(session, issue_id),
        "waiting": [
            {
                "deliveries": w.deliveries,
                "reason": w.reason,
                "at": w.resend_at.astimezone(zone) if w.resend_at else None,
            }
            for w in waiting
        ],
    }


def _uncertain(session: Session, issue_id: int) -> list[dict[str, Any]]:
    from newsletter.sending.models import DeliveryStatus
    from newsletter.sending.service import list_deliveries

    return [
        {"id": d.id, "email": email or "(erased)", "error": d.error or ""}
        for d, email in list_deliveries(
            session, issue_id, status=DeliveryStatus.UNCERTAIN, limit=200
        )
    ]


@router.post("/issues/{issue_id}/uncertain")
def resolve_uncertain(
    request: Request,
    issue_id: int,
    outcome: Annotated[str, Form()],
    delivery: Annotated[list[int] | None, Form()] = None,
) -> Response:
    """SendGrid's answer was lost for these deliveries: the editor checked its activity feed
    and says they went out, or asks to send exactly those again (the ticked ones, or all)."""
    from newsletter.sending import service as sending

    if outcome not in ("sent", "requeue"):
        raise HTTPException(status_code=400, detail="outcome must be sent or requeue")
    chosen = sorted(set(delivery)) if delivery else None

    def action(session: Session) -> str:
        if outcome == "sent":
            count = sending.resolve_mark_sent(session, issue_id, delivery_ids=chosen)
            return f"{count} uncertain deliveries marked sent."
        count = sending.resolve_requeue(session, issue_id, delivery_ids=chosen)
        if _issue_or_404(session, issue_id).status is IssueStatus.PAUSED:
            return f"{count} uncertain deliveries queued again; they go out when the send resumes."
        return (
            f"{count} uncertain deliveries queued again; the scheduler sends them at its next tick."
        )

    return _act(request, issue_id, action)


@router.get("/issues/{issue_id}/stats", response_class=HTMLResponse)
def stats(request: Request, issue_id: int) -> Response:
    from newsletter.tracking.stats import issue_stats

    with transaction() as session:
        issue = _issue_or_404(session, issue_id)
        numbers = issue_stats(session, issue_id)
    votes = [
        {
            "title": m["title"],
            "bars": charts.bars([(v["name"], v["votes"]) for v in m["votes"]]),
            "total": sum(v["votes"] for v in m["votes"]),
        }
        for m in numbers["matchups"]
    ]
    rows = numbers["trend"]
    context = {
        "issue": issue,
        "n": numbers,
        "opens": charts.opens_over_time(
            list(numbers["opens_by_hour"]), numbers["opens_first_hour"]
        ),
        "clicks": charts.bars([(m["title"], m["clicks_unique"]) for m in numbers["matchups"]]),
        "votes": votes,
        "trend": charts.trend(
            [str(r["week"]) for r in rows],
            {
                "opens": [r["open_rate"] for r in rows],
                "clicks": [r["click_rate"] for r in rows],
                "votes": [r["vote_rate"] for r in rows],
            },
        ),
    }
    return render(request, "web/editor/stats.html", context)
