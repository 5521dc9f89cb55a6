"""`newsletter demo`: the weekly job, end to end, on the repository's own example pages."""

from __future__ import annotations

from pathlib import Path

import typer

from newsletter.db import transaction
from newsletter.matchups import repository, service
from newsletter.migrate import upgrade

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_demo() -> None:
    upgrade()
    typer.echo("1. database ready")
    pages = sorted((EXAMPLES / "matchups").glob("*.txt"))
    for path in pages:
        parsed = service.read_file(path)
        if isinstance(parsed, service.RefusedFile):
            raise typer.Exit(f"example page refused: {parsed.message()}")  # type: ignore[arg-type]
        with transaction() as session:
            for data in parsed.matchups:
                matchup, outcome = service.import_matchup(session, data)
                typer.echo(f"   {outcome.value:9} {matchup.slug}")
    with transaction() as session:
        count = len(repository.list_all(session))
    typer.echo(f"2. {count} matchups in the database")
