"""`newsletter matchups …`"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from newsletter.cli.support import JsonOption, print_json, warn

app = typer.Typer(
    help="Import and list matchups (the site's comparison pages).", no_args_is_help=True
)


def _parse_when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 date/time: {value!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@app.command("import")
def import_(
    paths: list[Path] = typer.Argument(..., help="Page files (.txt), JSON files, or folders."),
    published_at: str | None = typer.Option(
        None, help="Publication time (ISO 8601) for pages that carry none; default: first import."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Import matchup pages; re-importing a page updates it. Bad files are refused whole."""
    from newsletter.db import transaction
    from newsletter.matchups import service

    when = _parse_when(published_at)
    report: dict[str, list[dict[str, object]]] = {"imported": [], "refused": []}
    for item in service.expand_paths(paths):
        parsed = item if isinstance(item, service.RefusedFile) else service.read_file(item)
        if isinstance(parsed, service.RefusedFile):
            warn(f"refused {parsed.message()}")
            report["refused"].append(
                {"file": str(parsed.path), "line": parsed.error.line, "reason": parsed.error.reason}
            )
            continue
        # One transaction per file: a failure rolls back only this file.
        try:
            with transaction() as session:
                outcomes = [service.import_matchup(session, data, when) for data in parsed.matchups]
        except Exception as exc:
            refused = service.not_stored(parsed.path, exc)
            warn(f"refused {refused.message()}")
            report["refused"].append(
                {"file": str(refused.path), "line": None, "reason": refused.error.reason}
            )
            continue
        for matchup, outcome in outcomes:
            report["imported"].append(
                {"file": str(parsed.path), "slug": matchup.slug, "outcome": outcome.value}
            )
            if not as_json:
                typer.echo(f"{outcome.value:9} {matchup.slug}  ({parsed.path.name})")
    if as_json:
        print_json(report)
    else:
        count = {
            o: sum(1 for r in report["imported"] if r["outcome"] == o)
            for o in service.MatchupChange
        }
        typer.echo(
            f"{count[service.MatchupChange.CREATED]} created, {count[service.MatchupChange.UPDATED]} updated, "
            f"{count[service.MatchupChange.UNCHANGED]} unchanged, {len(report['refused'])} refused"
        )
    if report["refused"]:
        raise typer.Exit(1)


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List every matchup, oldest first."""
    from newsletter.db import transaction
    from newsletter.matchups import service

    with transaction() as session:
        matchups = service.list_all(session)
        data = [service.to_json(m) for m in matchups]
    if as_json:
        print_json(data)
        return
    for item in data:
        tools = item["tools"]
        typer.echo(
            f"{item['published_at'][:10]}  {item['slug']}\n"
            f"            panel {tools[0]['panel_ship_pct']}% vs {tools[1]['panel_ship_pct']}%, "
            f"{len(item['reviews']) // 2} reviewers"
        )
    if not data:
        typer.echo("no matchups yet: `newsletter matchups import PATH…`")
