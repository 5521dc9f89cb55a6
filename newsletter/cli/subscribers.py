"""`newsletter subscribers …`"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from newsletter.cli.support import JsonOption, fail, is_terminal, print_json, warn

# The list's formats name themselves in `import --help`; formats.py needs nothing but the
# standard library. The rest of the list (its models, SQLAlchemy) is imported by each command.
from subscribers.formats import FORMATS

if TYPE_CHECKING:
    from subscribers.importer import ImportReport
    from subscribers.models import SubscriberStatus

app = typer.Typer(help="Manage the subscriber list.", no_args_is_help=True)


def _status(value: str | None) -> SubscriberStatus | None:
    if value is None:
        return None
    from subscribers.models import SubscriberStatus

    try:
        return SubscriberStatus(value.lower())
    except ValueError:
        choices = ", ".join(s.value for s in SubscriberStatus)
        raise typer.BadParameter(f"{value!r} is not a status; use one of {choices}") from None


StatusOption = typer.Option(
    None, "--status", help="Only this status: pending, active, unsubscribed, bounced, complained."
)


@app.command()
def add(
    email: str = typer.Argument(..., help="The address to add."),
    name: str = typer.Option("", "--name", help="The person's name."),
    confirm: bool = typer.Option(
        False,
        "--confirm",
        help="Double opt-in: add as pending and mail a confirmation link. Without it you "
        "vouch for their consent and they are active at once.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Add one subscriber (active, or pending with --confirm)."""
    from newsletter.db import transaction
    from subscribers import emails, service
    from subscribers.addresses import InvalidAddress

    try:
        with transaction() as session:
            if confirm:
                request = service.request_confirmation(session, email, name, source="cli")
                subscriber = service.find(session, email)
                outcome = "confirmation_sent" if request else "already_active"
            else:
                subscriber, added = service.add_by_admin(session, email, name)
                request, outcome = None, added.value
            assert subscriber is not None
            data = service.to_json(subscriber)
    except (InvalidAddress, service.SubscriberError) as exc:
        fail(f"{email}: {exc}")
    if request is not None:
        result = emails.send_confirmation(request)
        if not result.ok:
            fail(f"{data['email']}: pending, but the confirmation mail failed: {result.error}")
    if as_json:
        print_json({"outcome": outcome, "subscriber": data})
    else:
        typer.echo(f"{outcome.replace('_', ' ')}: {data['email']} ({data['status']})")


@app.command("import")
def import_(
    path: Path = typer.Argument(
        ...,
        help="A CSV file: this service's export, or Mailchimp's, Substack's, Buttondown's, "
        "Kit's, beehiiv's, Ghost's, listmonk's, Sendy's, MailerLite's, or any with an email column.",
    ),
    require_confirmation: bool = typer.Option(
        False,
        "--require-confirmation",
        help="Add new addresses as pending and mail each a confirmation link, instead of "
        "vouching for their consent (active).",
    ),
    format_: str | None = typer.Option(
        None,
        "--format",
        help=f"The tool that exported the file, when its header does not say: {', '.join(FORMATS)}.",
    ),
    mapping: list[str] = typer.Option(
        [],
        "--map",
        help="Which column holds what, over what the header says: "
        "--map 'email=E-Mail,first_name=Vorname' (fields: email, name, first_name, last_name, "
        "status, tags, signup_at; an empty header, 'tags=', ignores that field). Repeatable.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the full report without writing anything or sending mail."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Import subscribers from CSV. People the file says left are stored as having left and
    suppressed, never active; invalid rows are listed with their line number and nothing of
    them is written."""
    from subscribers import emails, importer
    from subscribers.formats import MappingError, parse_map

    try:
        if not path.is_file():
            fail(f"{path}: no such file")
    except OSError as exc:  # a name longer than the system allows, a loop of links…
        fail(f"{str(path)[:80]}…: cannot open: {exc.strerror}")
    try:
        overrides = parse_map(mapping)
    except MappingError as exc:
        fail(str(exc))
    send = emails.send_confirmation if require_confirmation and not dry_run else None
    options: dict[str, Any] = {
        "require_confirmation": require_confirmation,
        "send_confirmation": send,
        "fmt": format_,
        "overrides": overrides,
        "dry_run": dry_run,
    }
    try:
        if is_terminal():
            report = _import_with_progress(path, options)
        else:
            report = importer.import_csv(path, **options)
    except importer.ImportRefused as exc:
        fail(f"{path.name}: {exc}")
    from newsletter.db import transaction
    from newsletter.people.topics import topics_from_import

    with transaction() as session:
        topics_from_import(session, report)
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(path, report)
    if report.invalid:
        raise typer.Exit(1)


def _print_report(path: Path, report: ImportReport) -> None:
    mapped = ", ".join(f"{f} ← {h!r}" for f, h in report.mapping["columns"].items())
    typer.echo(f"format: {report.mapping['format_label']}; columns: {mapped}")
    if report.mapping["file_state"]:
        typer.echo(f"every row: {report.mapping['file_state']}")
    for row in report.invalid:
        warn(f"{path.name}:{row.line}: {row.reason} ({row.value!r})")
    for entry in report.to_json()["outcomes"]:
        if entry["outcome"] in ("kept_out", "skipped") and entry["count"]:
            more = f" and {entry['lines_not_listed']:,} more" if entry["lines_not_listed"] else ""
            lines = ", ".join(str(n) for n in entry["lines"][:20])
            if len(entry["lines"]) > 20:
                more = f" and {entry['count'] - 20:,} more"
            typer.echo(
                f"  {entry['outcome']} ({entry['reason']}): {entry['count']} — lines {lines}{more}"
            )
    reasons = ", ".join(f"{n} {r}" for r, n in report.skipped_by_reason.items() if n)
    pending = f" ({report.pending} pending)" if report.pending else ""
    prefix = "dry run, nothing written: " if report.dry_run else ""
    typer.echo(
        f"{prefix}{report.imported} imported{pending}, {report.updated} updated, "
        f"{report.kept_out} kept out because they left, "
        f"{report.skipped} skipped{f' ({reasons})' if reasons else ''}, "
        f"{len(report.invalid)} invalid"
    )
    if report.given_topics:
        typer.echo(f"{report.given_topics} new people got topics from their tags")


def _import_with_progress(path: Path, options: dict[str, Any]) -> ImportReport:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from subscribers import importer

    size = path.stat().st_size
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(f"importing {path.name}", total=size)
        return importer.import_csv(
            path, on_progress=lambda done: progress.update(task, completed=done), **options
        )


@app.command()
def export(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file (default: standard output)."
    ),
    status: str | None = StatusOption,
) -> None:
    """Export the list as CSV (UTF-8, header line, one subscriber per row)."""
    from newsletter.db import transaction
    from subscribers.export import csv_rows

    wanted = _status(status)
    stream = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        writer = csv.writer(stream)
        count = -1  # the header
        with transaction() as session:
            for row in csv_rows(session, wanted):
                writer.writerow(row)
                count += 1
    finally:
        if output:
            stream.close()
    if output:
        warn(f"{count} subscribers written to {output}")


@app.command("list")
def list_(
    status: str | None = StatusOption,
    search: str | None = typer.Option(None, "--search", help="Part of an email or name."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many."),
    as_json: bool = JsonOption,
) -> None:
    """List subscribers, oldest first."""
    from newsletter.db import transaction
    from subscribers import listing, service

    wanted = _status(status)
    with transaction() as session:
        found = list(listing.list_subscribers(session, status=wanted, search=search, limit=limit))
        topics = service.topics_by_subscriber(session, [s.id for s in found])
        rows = [service.to_json(s) | {"topics": topics.get(s.id, [])} for s in found]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        paused = " (paused)" if row["paused"] else ""
        typer.echo(f"{row['status']:12} {row['email']}  {row['name']}{paused}")
    if not rows:
        typer.echo("no subscribers match" if (status or search) else "no subscribers yet")


def _find_or_fail(session: Any, email: str) -> Any:
    from subscribers import service
    from subscribers.addresses import InvalidAddress

    try:
        subscriber = service.find(session, email)
    except InvalidAddress as exc:
        fail(f"{email}: {exc}")
    if subscriber is None:
        fail(f"{email}: not on the list")
    return subscriber


@app.command()
def show(email: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Everything held about one person (the same data as their own export)."""
    from newsletter.db import transaction
    from newsletter.people.export import personal_data

    with transaction() as session:
        data = personal_data(session, _find_or_fail(session, email))
    if as_json:
        print_json(data)
        return
    for key in ("email", "name", "status", "paused", "tracking_opt_out", "source"):
        typer.echo(f"{key:17} {data[key]}")
    typer.echo(f"{'topics':17} {', '.join(data['topics']) or 'every topic'}")
    consent = data["consent"]
    typer.echo(f"{'consent':17} {consent['method']} at {consent['at']} from {consent['ip']}")
    typer.echo(
        f"{'activity':17} {len(data['deliveries'])} deliveries, {len(data['events'])} events, "
        f"{len(data['votes'])} votes"
    )


@app.command()
def topics(
    email: str = typer.Argument(..., help="The subscriber's address."),
    chosen: list[str] = typer.Option(
        [],
        "--set",
        help="A topic (one of the site's categories); repeat for several. Replaces what they "
        "chose. Without --set or --clear, prints their topics and the ones there are.",
    ),
    clear: bool = typer.Option(False, "--clear", help="No topics: every topic again."),
    as_json: bool = JsonOption,
) -> None:
    """Show or set the topics someone reads (none chosen means every topic)."""
    from newsletter.db import transaction
    from newsletter.errors import Refused
    from newsletter.matchups import service as matchups
    from subscribers import service

    if clear and chosen:
        fail("--set and --clear together: choose one")
    try:
        with transaction() as session:
            subscriber = _find_or_fail(session, email)
            if clear or chosen:
                names = matchups.categories_named(
                    session, chosen, also=service.topics_of(session, subscriber.id)
                )
                if chosen and not names:
                    fail("--set names no topic (blank)")
                service.set_topics(session, subscriber.id, names)
            mine = service.topics_of(session, subscriber.id)
            there_are = matchups.categories(session)
            address = subscriber.email
    except Refused as exc:
        fail(f"{email}: {exc}")
    if as_json:
        print_json({"email": address, "topics": mine, "available": there_are})
        return
    typer.echo(f"{address}: {', '.join(mine) if mine else 'every topic (none chosen)'}")
    typer.echo(f"topics: {', '.join(there_are) or 'none yet (no matchup is published)'}")


@app.command()
def unsubscribe(email: str = typer.Argument(...), as_json: bool = JsonOption) -> None:
    """Unsubscribe someone (at their request): no more mail, never reactivated by an import."""
    from newsletter.db import transaction
    from subscribers import service

    with transaction() as session:
        subscriber = _find_or_fail(session, email)
        changed = service.unsubscribe(session, subscriber.id, reason="unsubscribed")
        data = service.to_json(service.get(session, subscriber.id))  # type: ignore[arg-type]
    if as_json:
        print_json({"changed": changed, "subscriber": data})
    elif changed:
        typer.echo(f"unsubscribed: {data['email']}")
    else:
        typer.echo(f"{data['email']} was already {data['status']}; now suppressed")


@app.command()
def erase(
    email: str = typer.Argument(...),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = JsonOption,
) -> None:
    """GDPR erasure: delete the person's data, keep only a one-way hash so the address stays
    suppressed. Their past deliveries stay counted, anonymous."""
    from newsletter.db import transaction
    from newsletter.people import erasure

    with transaction() as session:
        subscriber = _find_or_fail(session, email)
        address = subscriber.email
        if not yes and not typer.confirm(f"Erase everything about {address}?", err=True):
            fail("nothing erased")
        erasure.erase(session, subscriber.id)
    if as_json:
        print_json({"erased": True})
    else:
        typer.echo("erased (the address stays suppressed as a one-way hash)")
