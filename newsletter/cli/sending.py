"""`newsletter issue send|send-test|resolve|pause|resume|cancel|deliveries|worker`.

Registered on the `issue` group owned by newsletter/cli/issues.py. The ledger, the worker and
the transports are imported by the commands that use them: `newsletter --help` builds every
command's help from these signatures and should not load SQLAlchemy to do it.
"""

from __future__ import annotations

import enum
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from newsletter.cli.issues import app
from newsletter.cli.support import JsonOption, fail, is_terminal, print_json, warn
from newsletter.errors import Refused
from newsletter.numbers import ascii_int

IssueId = typer.Argument(..., help="The issue's id (see `newsletter issue list`).")
EXIT_PAUSED = 2
EXIT_INTERRUPTED = 130


class DeliveryStatusChoice(enum.StrEnum):
    """`issue deliveries --status`: the values of newsletter.sending.models.DeliveryStatus, in
    its order (tests/foundation/test_cli_start.py checks they stay the same). Typer reads the
    choices from the annotation when it builds any help, so the real one would load the ledger's
    models, and SQLAlchemy, for `newsletter --help`."""

    QUEUED = "queued"
    IN_FLIGHT = "in_flight"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    SKIPPED = "skipped"


def _summary(issue_id: int, started: float | None = None) -> dict[str, Any]:
    from newsletter.audience import subject_tests
    from newsletter.db import transaction
    from newsletter.issues import service as issues
    from newsletter.issues.models import IssueStatus
    from newsletter.sending import service

    with transaction() as session:
        status = issues.status_of(session, issue_id)
        counts = service.status_counts(session, issue_id)
        last_error = service.last_batch_error(session, issue_id)
        settled = service.settled_counts(session, issue_id)
        waiting = service.heal_uncertain(session, issue_id=issue_id, act=False).waiting
        variants = service.variants(session, issue_id)
        test = subject_tests.report(session, issue_id)
    summary: dict[str, Any] = {
        "issue_id": issue_id,
        "status": status.value if status else None,
        **counts,
        # How once-uncertain deliveries were settled, and what healing still waits for.
        "settled_by": settled,
        "uncertain_waiting": [
            {
                "deliveries": w.deliveries,
                "reason": w.reason,
                "resend_at": w.resend_at.isoformat() if w.resend_at else None,
            }
            for w in waiting
        ],
        # Readers who chose topics: which variant of the issue how many of them get.
        "variants": variants,
        "subject_test": test,
    }
    if started is not None:
        summary["seconds"] = round(time.monotonic() - started, 3)
    if status is IssueStatus.PAUSED and last_error:
        summary["error"] = last_error
    return summary


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    typer.echo(
        f"issue {summary['issue_id']} {summary['status']}: {summary['recipients']} recipients, "
        f"{summary['sent']} sent, {summary['failed']} failed, {summary['uncertain']} uncertain, "
        f"{summary['skipped']} skipped"
        + (
            f", {summary['queued'] + summary['in_flight']} not sent yet"
            if summary["queued"] + summary["in_flight"]
            else ""
        )
    )
    if summary["settled_by"]:
        typer.echo(
            "  settled after an uncertain hand-off: "
            + ", ".join(f"{n} {by}" for by, n in summary["settled_by"].items())
        )
    for variant in summary["variants"]:
        if variant["topics"] is None:
            typer.echo(f"  {variant['deliveries']} get the whole issue")
        elif not variant["topics"]:
            typer.echo(f"  {variant['deliveries']} skipped: nothing in their topics this week")
        else:
            subject = (
                "each their subject of the subject test"
                if variant["subject"] is None
                else repr(variant["subject"])
            )
            typer.echo(
                f"  {variant['deliveries']} get {variant['matchups']} matchups in "
                f"{', '.join(variant['topics'])}: {subject}"
            )
    test = summary.get("subject_test")
    if test and test["phase"] == "testing":
        from newsletter.audience.subject_tests import share_sent

        typer.echo(
            f"  subject test: {share_sent(test)} (the {test['share']}% share); the winner goes "
            f"to everyone else from {test['decide_at_local']} (`newsletter issue subject-test "
            f"{summary['issue_id']}` shows the figures)"
        )
    elif test and test["phase"] == "decided":
        going = summary["queued"] + summary["in_flight"]
        typer.echo(
            f"  subject test: subject {test['winner']} won ({test['decision']['why']}); "
            + (
                f"its send to everyone else is under way ({going:,} to go)"
                if going
                else "everyone else was sent it"
            )
        )
    for wait in summary["uncertain_waiting"]:
        when = f" (from {wait['resend_at']})" if wait["resend_at"] else ""
        typer.echo(f"  {wait['deliveries']} uncertain: {wait['reason']}{when}")
    if summary["uncertain"]:
        typer.echo(
            f"  {summary['uncertain']} uncertain: `newsletter issue deliveries "
            f"{summary['issue_id']} --status uncertain` lists them; resolve with "
            f"`newsletter issue resolve {summary['issue_id']} --resend|--mark-sent`"
        )


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C (SIGINT) and SIGTERM ask the worker to stop after the batches in flight.

    Python's default for SIGINT raises KeyboardInterrupt wherever the worker is, possibly in
    the middle of a SendGrid request, which leaves that batch's recipients uncertain; SIGTERM
    (a service manager stopping the worker) would end it there without even cleaning up."""

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            warn(f"{signal.Signals(signum).name}: stopping after the batches in flight…")
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run_with_progress(issue_id: int, *, show: bool, resolving: bool = False) -> bool:
    """Run a worker in this process until the send is over; False if interrupted."""
    from newsletter.db import transaction
    from newsletter.sending import service
    from newsletter.sending.worker import run_until_done

    stop = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            run_until_done(
                issue_id,
                worker_id=service.default_worker_id(),
                stop=stop,
                resolving=resolving,
            )
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    with _stop_on_signals(stop):
        thread.start()
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=False,
            ) as progress:
                task = progress.add_task(f"issue {issue_id}", total=None)
                while thread.is_alive():
                    thread.join(0.5)
                    with transaction() as session:
                        counts = service.status_counts(session, issue_id)
                    done = counts["recipients"] - counts["queued"] - counts["in_flight"]
                    progress.update(task, total=counts["recipients"], completed=done)
        else:
            while thread.is_alive():
                thread.join(0.5)
    if failure:
        raise failure[0]
    return not stop.is_set()


def _finish(issue_id: int, started: float, as_json: bool, completed: bool) -> None:
    from newsletter.issues.models import IssueStatus

    summary = _summary(issue_id, started)
    _print_summary(summary, as_json)
    if not completed:
        raise typer.Exit(EXIT_INTERRUPTED)
    if summary["status"] == IssueStatus.PAUSED.value:
        if summary.get("error"):
            warn(f"error: the send is paused: {summary['error']}")
            warn(f"fix the cause (SENDGRID_API_KEY?) then `newsletter issue resume {issue_id}`")
        else:
            warn(f"the send is paused; `newsletter issue resume {issue_id}` continues it")
        raise typer.Exit(EXIT_PAUSED)
    if summary["status"] == IssueStatus.CANCELLED.value:
        warn(f"issue {issue_id} was cancelled during the send")
        raise typer.Exit(1)


def _require_transport() -> None:
    """A send that could not leave (say, sendgrid without NEWSLETTER_POSTAL_ADDRESS) is refused
    before anything is queued, naming the setting to fix."""
    from newsletter.mail.transport import get_transport

    try:
        get_transport()
    except ValueError as exc:
        fail(str(exc))


@app.command()
def send(issue_id: int = IssueId, as_json: bool = JsonOption) -> None:
    """Send an approved issue now; returns when every delivery has an end state."""
    from newsletter.audience import service as audience
    from newsletter.db import transaction
    from newsletter.issues import service as issues
    from newsletter.issues.models import IssueStatus

    _require_transport()
    started = time.monotonic()
    with transaction() as session:
        status = issues.status_of(session, issue_id)
        if status is None:
            fail(f"issue {issue_id} does not exist")
        if status in (IssueStatus.APPROVED, IssueStatus.SCHEDULED):
            audience.start_send(session, issue_id)
    if status is IssueStatus.DRAFT:
        fail(
            f"issue {issue_id} is a draft: approve it first (`newsletter issue approve {issue_id}`)"
        )
    if status is IssueStatus.CANCELLED:
        fail(f"issue {issue_id} is cancelled")
    if status is IssueStatus.PAUSED:
        fail(f"issue {issue_id} is paused: `newsletter issue resume {issue_id}` continues it")
    completed = True
    if status is not IssueStatus.SENT:
        # A send already in progress elsewhere is joined: this process works alongside.
        completed = _run_with_progress(issue_id, show=is_terminal() and not as_json)
    _finish(issue_id, started, as_json, completed)


@app.command()
def resume(
    issue_id: int = IssueId,
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Keep sending in this process."),
    as_json: bool = JsonOption,
) -> None:
    """Resume a paused send (and, by default, send the rest from this process)."""
    from newsletter.db import transaction
    from newsletter.sending import service

    _require_transport()
    started = time.monotonic()
    try:
        with transaction() as session:
            service.resume(session, issue_id)
    except Refused as exc:
        fail(str(exc))
    completed = True
    if wait:
        completed = _run_with_progress(issue_id, show=is_terminal() and not as_json)
    _finish(issue_id, started, as_json, completed)


@app.command()
def pause(issue_id: int = IssueId, as_json: bool = JsonOption) -> None:
    """Pause a send in progress: workers stop after the batches they have in flight."""
    from newsletter.db import transaction
    from newsletter.sending import service

    try:
        with transaction() as session:
            service.pause(session, issue_id)
    except Refused as exc:
        fail(str(exc))
    _print_summary(_summary(issue_id), as_json)


@app.command("status")
def status_(issue_id: int = IssueId, as_json: bool = JsonOption) -> None:
    """Where a send stands: deliveries per state, how once-uncertain ones were settled (by
    SendGrid's evidence, an operator, a resend) and what the uncertain ones still wait for."""
    from newsletter.db import transaction
    from newsletter.issues import service as issues

    with transaction() as session:
        if issues.status_of(session, issue_id) is None:
            fail(f"issue {issue_id} does not exist")
    _print_summary(_summary(issue_id), as_json)


@app.command()
def cancel(issue_id: int = IssueId, as_json: bool = JsonOption) -> None:
    """Cancel an issue; during a send, what was not handed off yet is skipped (with why)."""
    from newsletter.db import transaction
    from newsletter.sending import service

    try:
        with transaction() as session:
            service.cancel(session, issue_id)
    except Refused as exc:
        fail(str(exc))
    _print_summary(_summary(issue_id), as_json)


@app.command()
def resolve(
    issue_id: int = IssueId,
    resend: bool = typer.Option(False, "--resend", help="Send the uncertain deliveries again."),
    mark_sent: bool = typer.Option(
        False, "--mark-sent", help="Record the uncertain deliveries as sent (checked by hand)."
    ),
    delivery: list[int] | None = typer.Option(
        None, "--delivery", help="Only this uncertain delivery (repeatable)."
    ),
    delivery_file: Path | None = typer.Option(
        None,
        "--delivery-file",
        help="Only the uncertain deliveries listed in this file, one id per line.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Resolve the deliveries left uncertain by a crash or a timeout (all, or the chosen ones).

    One crash can leave requests SendGrid accepted beside requests it never saw: check each
    uncertain delivery in SendGrid's activity feed (custom arg delivery_id), then
    --mark-sent the ones it shows and --resend the others.
    """
    from newsletter.db import transaction
    from newsletter.sending import service

    if resend == mark_sent:
        fail("choose exactly one of --resend or --mark-sent")
    chosen = _chosen_deliveries(delivery, delivery_file)
    started = time.monotonic()
    try:
        with transaction() as session:
            if mark_sent:
                count = service.resolve_mark_sent(session, issue_id, delivery_ids=chosen)
            else:
                count = service.resolve_requeue(session, issue_id, delivery_ids=chosen)
    except Refused as exc:
        fail(str(exc))
    if chosen is not None and count < len(chosen):
        warn(
            f"{len(chosen) - count} of the {len(chosen)} chosen deliveries are not uncertain "
            f"deliveries of issue {issue_id} (already resolved?); left as they are"
        )
    if not as_json:
        typer.echo(f"{count} uncertain deliveries {'re-queued' if resend else 'marked sent'}")
    completed = True
    if resend and count:
        completed = _run_with_progress(issue_id, show=is_terminal() and not as_json, resolving=True)
    _finish(issue_id, started, as_json, completed)


def _chosen_deliveries(ids: list[int] | None, path: Path | None) -> list[int] | None:
    if not ids and path is None:
        return None
    chosen = set(ids or ())
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            fail(f"--delivery-file {path}: {exc.strerror or exc}")
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text:
                continue
            delivery_id = ascii_int(text)
            if delivery_id is None:
                fail(f"--delivery-file {path}, line {number}: {text[:40]!r} is not a delivery id")
            chosen.add(delivery_id)
    return sorted(chosen)


@app.command("send-test")
def send_test(
    issue_id: int = IssueId,
    to: list[str] = typer.Option(
        ...,
        "--to",
        help="Where a test copy goes; repeat --to or separate addresses with commas.",
    ),
    topic: list[str] = typer.Option(
        [],
        "--topic",
        help="The copy readers of this topic get (repeat for several), as `issue preview "
        "--topic` shows it.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Send test copies (untracked, outside the delivery ledger). Their vote, unsubscribe and
    preferences links open pages that say what they do, and record nothing."""
    from newsletter.db import transaction
    from newsletter.sending import service

    if any(not name.strip() for name in topic):
        fail("--topic names no topic (blank); leave --topic out for the whole issue")
    try:
        addresses = service.test_addresses(to)
        with transaction() as session:
            results = service.send_test(session, issue_id, addresses, topics=topic)
    except ValueError as exc:
        fail(str(exc))
    rows = [
        {"to": address, "ok": r.ok, "message_id": r.message_id, "error": r.error}
        for address, r in results
    ]
    ok = all(row["ok"] for row in rows)
    copy = f" (the copy readers of {', '.join(topic)} get)" if topic else ""
    if as_json:
        # One address: the row's own keys too, as before several were possible.
        single = rows[0] if len(rows) == 1 else {}
        print_json({**single, "issue_id": issue_id, "ok": ok, "results": rows})
    else:
        for row in rows:
            if row["ok"]:
                typer.echo(
                    f"test copy of issue {issue_id}{copy} sent to {row['to']} ({row['message_id']})"
                )
    if not ok:
        refused = "; ".join(f"{row['to']}: {row['error']}" for row in rows if not row["ok"])
        fail(f"the test copy was not sent to {refused}")


@app.command()
def deliveries(
    issue_id: int = IssueId,
    status: DeliveryStatusChoice | None = typer.Option(None, "--status", help="Only this state."),
    limit: int = typer.Option(100, "--limit", min=1, max=100_000),
    as_json: bool = JsonOption,
) -> None:
    """The delivery ledger of an issue: who, in what state, and why."""
    from newsletter.db import transaction
    from newsletter.issues import service as issues
    from newsletter.sending import service
    from newsletter.sending.models import DeliveryStatus

    wanted = None if status is None else DeliveryStatus(status.value)
    with transaction() as session:
        if issues.status_of(session, issue_id) is None:
            fail(f"issue {issue_id} does not exist")
        rows = service.list_deliveries(session, issue_id, status=wanted, limit=limit)
        items = [
            {
                "id": d.id,
                "email": email,
                "status": DeliveryStatus(d.status).value,
                "message_id": d.message_id,
                "error": d.error,
                "attempts": d.attempts,
                "sent_at": d.sent_at.isoformat() if d.sent_at else None,
            }
            for d, email in rows
        ]
    if as_json:
        print_json(items)
        return
    for item in items:
        detail = item["error"] or item["message_id"] or ""
        typer.echo(f"{item['id']:>8}  {item['status']:<10} {item['email'] or '(erased)'}  {detail}")


@app.command()
def worker(
    issue: int | None = typer.Option(None, "--issue", help="Only this issue."),
    wait: bool = typer.Option(
        False, "--wait", help="Keep waiting for sends to start instead of exiting when idle."
    ),
) -> None:
    """An extra worker process: helps send every issue that is sending (or just --issue)."""
    from newsletter.db import transaction
    from newsletter.issues import service as issues
    from newsletter.issues.models import IssueStatus
    from newsletter.sending import service
    from newsletter.sending.worker import run_until_done

    worker_id = service.default_worker_id()
    stop = threading.Event()
    with _stop_on_signals(stop):
        while not stop.is_set():
            with transaction() as session:
                if issue is not None:
                    status = issues.status_of(session, issue)
                    work = [(issue, status is IssueStatus.SENT)] if status else []
                else:
                    work = service.issues_with_work(session)
            if issue is not None and not work:
                fail(f"issue {issue} does not exist")
            for issue_id, resolving in work:
                run_until_done(issue_id, worker_id=worker_id, stop=stop, resolving=resolving)
            if not wait:
                break
            stop.wait(2.0)
    if stop.is_set():
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command("subject-test")
def subject_test(
    issue_id: int = IssueId,
    subject: list[str] = typer.Option(
        [], "--subject", help="A subject to test: give 2 to 4, one --subject each."
    ),
    share: int | None = typer.Option(
        None,
        "--share",
        help="Percent of the audience that gets the test (1-100; default: the test's current "
        "share, 20 for a new test).",
    ),
    wait: str | None = typer.Option(
        None,
        "--wait",
        help="How long after the test starts the winner is chosen: 4h, 90m, 1d (default: the "
        "test's current wait, 4h for a new test).",
    ),
    remove: bool = typer.Option(False, "--remove", help="Go back to one subject."),
    winner: str | None = typer.Option(
        None,
        "--winner",
        help="During the test: send subject N to everyone else now ('best': the one leading).",
    ),
    queue_only: bool = typer.Option(
        False, "--queue-only", help="With --winner: leave the rest to the scheduler's workers."
    ),
    as_json: bool = JsonOption,
) -> None:
    """An issue's subject test: show it with each subject's figures, set it before the send
    (withdraws an approval), or choose the winner during it."""
    from newsletter.audience import subject_tests
    from newsletter.db import transaction
    from newsletter.issues import service as issues

    setting = bool(subject) or share is not None or wait is not None
    if sum((setting, remove, winner is not None)) > 1:
        fail("choose one: set the test (--subject/--share/--wait), --remove or --winner")
    if queue_only and winner is None:
        fail("--queue-only goes with --winner: it leaves the winner's send to the scheduler")
    reopened = False
    picked = None
    try:
        with transaction() as session:
            issues.require(session, issue_id)
            found = subject_tests.get(session, issue_id)
            if setting:
                if not subject and found is None:
                    fail(f"issue {issue_id} has no subject test: give 2 to 4 --subject")
                minutes = (
                    subject_tests.parse_wait(wait)
                    if wait is not None
                    else (found.wait_minutes if found else subject_tests.DEFAULT_WAIT_MINUTES)
                )
                reopened = subject_tests.set_test(
                    session,
                    issue_id,
                    subject or (list(found.subjects) if found else []),
                    share=share
                    if share is not None
                    else (found.share if found else subject_tests.DEFAULT_SHARE),
                    wait_minutes=minutes,
                    by="cli",
                )
            elif remove:
                if found is None:
                    fail(f"issue {issue_id} has no subject test to remove")
                reopened = subject_tests.remove_test(session, issue_id)
            elif winner is not None:
                number = None if winner.strip().lower() == "best" else ascii_int(winner)
                if winner.strip().lower() != "best" and number is None:
                    fail(f"--winner {winner[:20]!r}: give a subject's number or 'best'")
                picked = subject_tests.decide(
                    session,
                    issue_id,
                    winner=number,
                    by="cli" if number is not None else "cli (best so far)",
                )
                if picked is None:
                    fail(f"issue {issue_id}'s subject test was decided already")
            result = subject_tests.report(session, issue_id)
    except Refused as exc:
        fail(str(exc))
    if reopened:
        warn(f"issue {issue_id} is back to draft: approve it again with this subject test")
    if picked is not None and not queue_only:
        completed = _run_with_progress(issue_id, show=is_terminal() and not as_json)
        with transaction() as session:
            result = subject_tests.report(session, issue_id)
        if not completed:
            raise typer.Exit(EXIT_INTERRUPTED)
    if as_json:
        print_json({"id": issue_id, "subject_test": result, "approval_withdrawn": reopened})
        return
    if result is None:
        typer.echo(f"issue {issue_id} has one subject (no subject test)")
        return
    for line in subject_tests.text_report(result):
        typer.echo(line)
