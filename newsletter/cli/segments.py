"""`newsletter segments …`: saved filters over the list (newsletter/audience), counted live."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import typer

from newsletter.cli.support import JsonOption, fail, print_json, warn

app = typer.Typer(
    help="Segments: saved, named filters over the list; count, export, act on or send to one.",
    no_args_is_help=True,
)

Name = typer.Argument(..., help="The segment's name (case aside) or id.")
Statuses = typer.Option(
    [],
    "--status",
    help="Keep people in this state (pending, active, unsubscribed, bounced, complained); "
    "repeat for several.",
)
Topics = typer.Option([], "--topic", help="Keep people who chose this topic; repeat for several.")
Tags = typer.Option([], "--tag", help="Keep people imported with this tag; repeat for several.")
JoinedAfter = typer.Option(None, "--joined-after", help="Joined on or after this day (YYYY-MM-DD).")
JoinedBefore = typer.Option(None, "--joined-before", help="Joined before this day (YYYY-MM-DD).")
Sources = typer.Option(
    [], "--source", help="Keep people from this source (web, api, cli, import…); repeatable."
)
Engaged = typer.Option(
    None, "--engaged-in-last", help="Clicked or voted in at least one of the last N sent issues."
)
NotEngaged = typer.Option(
    None, "--not-engaged-in-last", help="No click and no vote in the last N sent issues."
)
NeverOpened = typer.Option(
    False, "--never-opened", help="Never opened an issue as a person (proxy opens do not count)."
)
RuleJson = typer.Option(
    None,
    "--rule",
    help='The whole rule as JSON, as the API takes it: \'{"statuses": ["active"], '
    '"engaged_in_last": 4}\'. Not with the options above.',
)


def _raw_rule(
    statuses: list[str],
    topics: list[str],
    tags: list[str],
    joined_after: str | None,
    joined_before: str | None,
    sources: list[str],
    engaged: int | None,
    not_engaged: int | None,
    never_opened: bool,
    rule_json: str | None,
) -> dict[str, Any] | None:
    """The rule the options give, or None if they give none."""
    options: dict[str, Any] = {
        "statuses": [s.strip().lower() for s in statuses],
        "topics": topics,
        "tags": tags,
        "joined_after": joined_after,
        "joined_before": joined_before,
        "sources": sources,
        "engaged_in_last": engaged,
        "not_engaged_in_last": not_engaged,
        "never_opened": never_opened,
    }
    given = {k: v for k, v in options.items() if v not in (None, [], False)}
    if rule_json is not None:
        if given:
            fail("--rule and the rule's options together: give one or the other")
        try:
            parsed = json.loads(rule_json)
        except ValueError as exc:
            fail(f"--rule is not JSON: {exc}")
        if not isinstance(parsed, dict):
            fail('--rule must be a JSON object, e.g. \'{"statuses": ["active"]}\'')
        return parsed
    return given or None


def _show(summary: dict[str, Any]) -> None:
    typer.echo(f"{summary['name']} (#{summary['id']}): {summary['described']}")
    typer.echo(
        f"  {summary['members']:,} members now, {summary['mailable']:,} of them would be mailed"
    )


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """Every segment with its live counts."""
    from newsletter.audience import service
    from newsletter.db import transaction

    with transaction() as session:
        found = [service.summary(session, s) for s in service.all_segments(session)]
    if as_json:
        print_json(found)
        return
    if not found:
        typer.echo("no segments yet (`newsletter segments add NAME --status active …`)")
    for summary in found:
        _show(summary)


@app.command()
def add(
    name: str = typer.Argument(..., help="A name for it (unique, case aside)."),
    statuses: list[str] = Statuses,
    topics: list[str] = Topics,
    tags: list[str] = Tags,
    joined_after: str | None = JoinedAfter,
    joined_before: str | None = JoinedBefore,
    sources: list[str] = Sources,
    engaged: int | None = Engaged,
    not_engaged: int | None = NotEngaged,
    never_opened: bool = NeverOpened,
    rule_json: str | None = RuleJson,
    as_json: bool = JsonOption,
) -> None:
    """Save a segment. Every condition given must hold; a repeated one keeps any of its values.
    No condition: the whole list."""
    from newsletter.audience import service
    from newsletter.db import transaction
    from newsletter.errors import Refused

    raw = _raw_rule(
        statuses,
        topics,
        tags,
        joined_after,
        joined_before,
        sources,
        engaged,
        not_engaged,
        never_opened,
        rule_json,
    )
    try:
        with transaction() as session:
            segment = service.create(session, name, raw or {}, by="cli")
            summary = service.summary(session, segment)
    except Refused as exc:
        fail(str(exc))
    if as_json:
        print_json(summary)
        return
    _show(summary)


@app.command()
def edit(
    segment: str = Name,
    rename: str | None = typer.Option(None, "--name", help="A new name."),
    statuses: list[str] = Statuses,
    topics: list[str] = Topics,
    tags: list[str] = Tags,
    joined_after: str | None = JoinedAfter,
    joined_before: str | None = JoinedBefore,
    sources: list[str] = Sources,
    engaged: int | None = Engaged,
    not_engaged: int | None = NotEngaged,
    never_opened: bool = NeverOpened,
    rule_json: str | None = RuleJson,
    everyone: bool = typer.Option(False, "--everyone", help="No condition: the whole list."),
    as_json: bool = JsonOption,
) -> None:
    """Rename a segment, or give it a new rule: the conditions given replace the old rule
    whole (what is not given is no longer a condition)."""
    from newsletter.audience import service
    from newsletter.db import transaction
    from newsletter.errors import Refused

    raw = _raw_rule(
        statuses,
        topics,
        tags,
        joined_after,
        joined_before,
        sources,
        engaged,
        not_engaged,
        never_opened,
        rule_json,
    )
    if everyone and raw is not None:
        fail("--everyone and a condition together: choose one")
    if raw is None and not everyone and rename is None:
        fail("nothing to change: give --name, conditions, --rule or --everyone")
    try:
        with transaction() as session:
            found = service.find(session, segment)
            changed = service.change(
                session, found.id, name=rename, raw_rule={} if everyone else raw
            )
            summary = service.summary(session, changed)
    except Refused as exc:
        fail(str(exc))
    if as_json:
        print_json(summary)
        return
    _show(summary)


@app.command()
def show(segment: str = Name, as_json: bool = JsonOption) -> None:
    """A segment's rule, its live counts and the issues waiting to go to it."""
    from newsletter.audience import service
    from newsletter.db import transaction
    from newsletter.errors import Refused

    try:
        with transaction() as session:
            found = service.find(session, segment)
            summary = service.summary(session, found)
            summary["issues"] = [
                {"id": i.id, "week": i.week, "status": i.status.value}
                for i in service.issues_for(session, found)
            ]
    except Refused as exc:
        fail(str(exc))
    if as_json:
        print_json(summary)
        return
    _show(summary)
    for issue in summary["issues"]:
        typer.echo(f"  audience of issue {issue['id']} ({issue['week']}, {issue['status']})")


@app.command()
def delete(segment: str = Name) -> None:
    """Delete a segment (nobody is changed). Refused while an unsent issue goes to it."""
    from newsletter.audience import service
    from newsletter.db import transaction
    from newsletter.errors import Refused

    try:
        with transaction() as session:
            name = service.delete(session, service.find(session, segment).id)
    except Refused as exc:
        fail(str(exc))
    typer.echo(f"segment {name!r} deleted")


@app.command()
def export(
    segment: str = Name,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write to this file (default: standard output)."
    ),
) -> None:
    """The segment's members as CSV, in the shape of `subscribers export`."""
    from newsletter.audience import service
    from newsletter.db import transaction
    from newsletter.errors import Refused
    from subscribers.export import csv_rows

    try:
        with transaction() as session:
            within = service.members(session, service.find(session, segment))
            stream = output.open("w", newline="", encoding="utf-8") if output else sys.stdout
            try:
                writer = csv.writer(stream)
                count = -1  # the header
                for row in csv_rows(session, within=within):
                    writer.writerow(row)
                    count += 1
            finally:
                if output:
                    stream.close()
    except Refused as exc:
        fail(str(exc))
    if output:
        warn(f"{count} subscribers written to {output}")


ACTIONS = ("unsubscribe", "pause", "resume", "erase")


@app.command()
def apply(
    segment: str = Name,
    action: str = typer.Argument(..., help="unsubscribe, pause, resume or erase."),
    confirm: int | None = typer.Option(
        None,
        "--confirm",
        help="The number of members the first run printed: the action runs only if it is "
        "still that many.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """The admin's bulk action on every member of a segment, in one transaction. Without
    --confirm, says how many it would touch and changes nothing."""
    from newsletter.audience import service
    from newsletter.db import transaction
    from newsletter.errors import Refused
    from newsletter.people import erasure
    from subscribers import listing
    from subscribers.service import BulkAction

    if action not in ACTIONS:
        fail(f"{action!r} is not an action; use one of {', '.join(ACTIONS)}")
    try:
        with transaction() as session:
            found = service.find(session, segment)
            ids = listing.matching_ids(
                session, within=service.members(session, found), limit=10**12
            )
            result: dict[str, Any] = {"segment": found.name, "action": action}
            if confirm is None or confirm != len(ids):
                result.update(members=len(ids), done=0)
                if confirm is not None:
                    fail(
                        f"segment {found.name!r} has {len(ids):,} members now, not {confirm:,}: "
                        f"nothing done; run again with --confirm {len(ids)}"
                    )
            else:
                done = erasure.apply_bulk(session, BulkAction(action), ids)
                result.update(members=len(ids), done=done)
    except Refused as exc:
        fail(str(exc))
    if as_json:
        print_json(result)
        return
    if confirm is None:
        typer.echo(
            f"would {action} {result['members']:,} members of {result['segment']!r}; nothing "
            f"done. Run again with --confirm {result['members']} to do it."
        )
        return
    typer.echo(f"{action}: {result['done']:,} of {result['members']:,} members changed")
