"""`newsletter issue …`: build, preview, edit, approve and schedule the weekly issue.

Sending commands (send, send-test, resolve, pause, resume, cancel) are registered on this same
group by newsletter/cli/sending.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from newsletter.cli.support import JsonOption, fail, print_json, warn

app = typer.Typer(
    help="Build, preview, approve, schedule and send the weekly issue.", no_args_is_help=True
)

IssueId = typer.Argument(..., help="The issue id (see `newsletter issue list`).")


@app.command()
def build(
    week: str | None = typer.Option(
        None, "--week", help="ISO week like 2026-W07; default: the current week."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create the week's draft issue, or refresh it (editor overrides are kept).

    Picks the matchups published since the previous issue's cut-off that are in no sent issue,
    most decisive panel first; above NEWSLETTER_MAX_MATCHUPS the rest go to "more this week".
    """
    from newsletter.db import transaction
    from newsletter.issues import service
    from newsletter.issues.service import IssueError
    from newsletter.issues.weeks import WeekError

    try:
        with transaction() as session:
            result = service.build(session, week)
            data = service.to_json(session, result.issue)
    except (IssueError, WeekError) as exc:
        fail(str(exc))
    if not result.refreshed:
        warn(f"issue {data['id']} for {data['week']} is {data['status']}: left as it is")
    if as_json:
        print_json({"id": data["id"], "week": data["week"], "matchups": data["matchups"]})
        return
    typer.echo(f"issue {data['id']} for {data['week']} ({data['status']}):")
    for position, slug in enumerate(data["matchups"], start=1):
        more = "  (more this week)" if slug in data["more_this_week"] else ""
        typer.echo(f"  {position}. {slug}{more}")
    for slug in data["excluded"]:
        typer.echo(f"  -  {slug}  (excluded)")
    if not data["matchups"]:
        typer.echo("  no new matchups since the previous issue")


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List every issue, newest week first."""
    from newsletter.db import transaction
    from newsletter.issues import service

    with transaction() as session:
        data = [service.to_json(session, issue) for issue in service.list_all(session)]
    if as_json:
        print_json(data)
        return
    for item in data:
        typer.echo(
            f"{item['id']:>4}  {item['week']}  {item['status']:<9}  "
            f"{len(item['matchups'])} matchups  {item['subject'] or ''}"
        )


@app.command()
def show(issue_id: int = IssueId, as_json: bool = JsonOption) -> None:
    """Show an issue: status, subject, matchups in order, the editor's overrides."""
    from newsletter.db import transaction
    from newsletter.issues import service
    from newsletter.issues.service import IssueError

    try:
        with transaction() as session:
            issue = service.require(session, issue_id)
            data = service.to_json(session, issue)
            content = service.content(session, issue)
    except IssueError as exc:
        fail(str(exc))
    data["subject"] = content.subject if data["status"] == "draft" else data["subject"]
    data["preheader"] = content.preheader
    data["intro"] = content.intro
    data["storylines"] = content.storylines
    if as_json:
        print_json(data)
        return
    typer.echo(f"issue {data['id']}  {data['week']}  {data['status']}")
    typer.echo(f"subject:   {data['subject']}")
    typer.echo(f"preheader: {data['preheader']}")
    typer.echo(f"intro:     {data['intro']}")
    for story in data["storylines"]:
        typer.echo(f"storyline: {story}")
    for position, item in enumerate(content.featured, start=1):
        edited = "  [summary edited]" if item.edited else ""
        typer.echo(f"  {position}. {item.verdict.slug}{edited}\n     {item.summary}")
    for verdict in content.more:
        typer.echo(f"  +  {verdict.slug}  (more this week)")
    for slug in data["excluded"]:
        typer.echo(f"  -  {slug}  (excluded)")


@app.command()
def preview(
    issue_id: int = IssueId,
    html: Path | None = typer.Option(None, "--html", help="Write the HTML part here."),
    text: Path | None = typer.Option(None, "--text", help="Write the plain-text part here."),
    topic: list[str] = typer.Option(
        [],
        "--topic",
        help="As a reader who chose this topic gets it (repeat for several): only the "
        "matchups in their topics, with the subject and overview that follow.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Write what a subscriber would get (placeholders filled for a sample subscriber)."""
    from newsletter.db import transaction
    from newsletter.errors import Refused
    from newsletter.issues import service

    if html is None and text is None:
        fail("give --html FILE and/or --text FILE")
    if any(not name.strip() for name in topic):
        fail("--topic names no topic (blank); leave --topic out for the whole issue")
    variant = None
    try:
        with transaction() as session:
            if topic:
                variant = service.variant_preview(session, issue_id, topic)
                html_part, text_part = variant.html, variant.text
            else:
                html_part, text_part = service.preview(session, issue_id)
    except Refused as exc:
        fail(str(exc))
    about: dict[str, Any] = {}
    if variant is not None:
        about = {
            "topics": variant.topics,
            "matchups": variant.matchups,
            "whole_issue": variant.whole,
            # With a subject test its readers get the test's subjects, not the copy's own.
            "subject": None if variant.test_subjects else variant.subject,
            "subject_test_subjects": list(variant.test_subjects),
            "frozen": variant.frozen,
        }
        if variant.empty:
            # Not an error: the answer is that these readers get nothing this week.
            message = (
                f"readers of {', '.join(variant.topics)} get no mail this week: none of "
                f"issue {issue_id}'s matchups is in their topics (their delivery is skipped); "
                "nothing written"
            )
            if as_json:
                print_json({"id": issue_id, **about, "written": [], "message": message})
            else:
                typer.echo(message)
            return
        if not as_json:
            whole = " (the whole issue)" if variant.whole else ""
            subject = variant.subject
            if variant.test_subjects:
                subject = "by the subject test: " + " / ".join(
                    f"{n}. {text}" for n, text in enumerate(variant.test_subjects, start=1)
                )
            typer.echo(
                f"readers of {', '.join(variant.topics)} get {len(variant.matchups)} "
                f"matchup(s){whole}: {', '.join(variant.matchups)}\nsubject: {subject}"
            )
    written = []
    for path, body in ((html, html_part), (text, text_part)):
        if path is not None:
            try:
                path.write_text(body, encoding="utf-8")
            except OSError as exc:
                fail(f"cannot write {path}: {exc.strerror}")
            written.append({"path": str(path), "bytes": len(body.encode())})
            if not as_json:
                typer.echo(f"wrote {path} ({len(body.encode()):,} bytes)")
    if as_json:
        print_json({"id": issue_id, **about, "written": written})


@app.command()
def edit(
    issue_id: int = IssueId,
    subject: str | None = typer.Option(None, help="Subject line ('' = back to the written one)."),
    preheader: str | None = typer.Option(None, help="Preheader ('' = back to the written one)."),
    intro: str | None = typer.Option(None, help="Intro paragraph(s) ('' = the written one)."),
    as_json: bool = JsonOption,
) -> None:
    """Override the issue's subject, preheader or intro; kept across rebuilds."""
    from newsletter.db import transaction
    from newsletter.issues import service
    from newsletter.issues.service import IssueError

    if subject is None and preheader is None and intro is None:
        fail("nothing to change: give --subject, --preheader and/or --intro")
    try:
        with transaction() as session:
            reopened = service.edit_issue(
                session, issue_id, subject=subject, preheader=preheader, intro=intro
            )
            data = service.to_json(session, service.require(session, issue_id))
    except IssueError as exc:
        fail(str(exc))
    _report_edit(issue_id, f"issue {issue_id} updated", data, reopened=reopened, as_json=as_json)


@app.command()
def matchup(
    issue_id: int = IssueId,
    slug: str = typer.Argument(..., help="The matchup's slug (see `newsletter issue show`)."),
    summary: str | None = typer.Option(
        None, help="Replace the written verdict summary ('' = back to the written one)."
    ),
    position: int | None = typer.Option(
        None, help="Pin the matchup at this position, 1 = first (0 = unpin, order by panel gap)."
    ),
    exclude: bool = typer.Option(False, "--exclude", help="Leave this matchup out of the issue."),
    include: bool = typer.Option(False, "--include", help="Put an excluded matchup back."),
    as_json: bool = JsonOption,
) -> None:
    """Edit one matchup of an issue: summary, position, exclusion. Kept across rebuilds."""
    from newsletter.db import transaction
    from newsletter.issues import service
    from newsletter.issues.service import IssueError

    if exclude and include:
        fail("--exclude and --include contradict each other")
    if summary is None and position is None and not exclude and not include:
        fail("nothing to change: give --summary, --position, --exclude or --include")
    try:
        with transaction() as session:
            reopened = service.edit_matchup(
                session,
                issue_id,
                slug,
                summary=summary,
                position=position,
                excluded=True if exclude else (False if include else None),
            )
            data = service.to_json(session, service.require(session, issue_id))
    except IssueError as exc:
        fail(str(exc))
    _report_edit(
        issue_id, f"issue {issue_id}: {slug} updated", data, reopened=reopened, as_json=as_json
    )


def _report_edit(
    issue_id: int, message: str, data: dict[str, Any], *, reopened: bool, as_json: bool
) -> None:
    if reopened:
        warn(f"issue {issue_id} is a draft again: approve it once more to send")
    if as_json:
        print_json(data)
    else:
        typer.echo(message)


@app.command()
def approve(
    issue_id: int = IssueId,
    by: str = typer.Option("cli", help="Who approves (recorded on the issue)."),
    as_json: bool = JsonOption,
) -> None:
    """Approve a draft: its render is frozen; this is exactly what will be sent."""
    from newsletter.db import transaction
    from newsletter.issues import service
    from newsletter.issues.service import IssueError

    try:
        with transaction() as session:
            issue = service.approve(session, issue_id, by=by)
            data = service.to_json(session, issue)
    except IssueError as exc:
        fail(str(exc))
    if as_json:
        print_json(data)
    else:
        typer.echo(f"issue {issue_id} approved: {data['subject']}")


@app.command("schedule")
def schedule_(
    issue_id: int = IssueId,
    at: str = typer.Option(
        ...,
        "--at",
        help="Send time, ISO 8601; without an offset it is in NEWSLETTER_TIMEZONE.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Schedule an approved issue; the scheduler sends it when the time comes."""
    from newsletter.db import transaction
    from newsletter.issues import service
    from newsletter.issues.service import IssueError

    try:
        when = service.parse_send_time(at)
        with transaction() as session:
            issue = service.schedule(session, issue_id, when)
            data = service.to_json(session, issue)
            shown = service.local_time(when)
    except IssueError as exc:
        fail(str(exc))
    if as_json:
        print_json(data)
    else:
        typer.echo(f"issue {issue_id} scheduled for {shown}")


@app.command()
def audience(
    issue_id: int = IssueId,
    segment: str | None = typer.Option(
        None, "--segment", help="Send it to this segment's members (name or id)."
    ),
    everyone: bool = typer.Option(False, "--everyone", help="Send it to everyone mailable."),
    as_json: bool = JsonOption,
) -> None:
    """Who the issue goes to: show it, or choose a segment or everyone. Changing it withdraws an
    approval (approve again for the new audience)."""
    from newsletter.audience import service as audiences
    from newsletter.db import transaction
    from newsletter.errors import Refused
    from newsletter.issues import service
    from newsletter.issues.models import SEND_STARTED
    from newsletter.sending import service as sending

    if segment is not None and everyone:
        fail("--segment and --everyone together: choose one")
    reopened = False
    try:
        with transaction() as session:
            if segment is not None or everyone:
                chosen = audiences.find(session, segment) if segment is not None else None
                reopened = audiences.set_issue_audience(
                    session, issue_id, chosen.id if chosen else None
                )
            issue = service.require(session, issue_id)
            if issue.audience is not None or issue.status in SEND_STARTED:
                # Sends started before segments existed wrote no audience: they went to everyone.
                sent = issue.audience or {
                    "segment": None,
                    "recipients": sending.status_counts(session, issue_id)["recipients"],
                }
                result: dict[str, Any] = {"id": issue_id, "sent_to": sent}
            else:
                found, count = audiences.audience_of(session, issue_id)
                result = {
                    "id": issue_id,
                    "segment": found.name if found else None,
                    "described": audiences.rule_of(found).describe() if found else None,
                    "would_be_mailed": count,
                }
            result["approval_withdrawn"] = reopened
    except Refused as exc:
        fail(str(exc))
    if reopened:
        warn(f"issue {issue_id} is back to draft: approve it again for this audience")
    if as_json:
        print_json(result)
        return
    if "sent_to" in result and result["sent_to"].get("segment") is None:
        typer.echo(
            f"issue {issue_id} was sent to everyone: "
            f"{result['sent_to'].get('recipients', 0):,} recipients"
        )
    elif "sent_to" in result:
        sent = result["sent_to"]
        typer.echo(
            f"issue {issue_id} was sent to segment {sent.get('segment')!r} "
            f"({sent.get('described')}): {sent.get('recipients', 0):,} recipients"
        )
    elif result["segment"] is None:
        typer.echo(f"issue {issue_id} goes to everyone: {result['would_be_mailed']:,} now")
    else:
        typer.echo(
            f"issue {issue_id} goes to segment {result['segment']!r} ({result['described']}): "
            f"{result['would_be_mailed']:,} now"
        )
