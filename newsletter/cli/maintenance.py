"""`newsletter maintenance`: the daily housekeeping (the scheduler runs it once a day)."""

from __future__ import annotations

import typer

from newsletter.cli.support import JsonOption, print_json


def maintenance(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Count what would be cleared and deleted; change nothing."
    ),
    batch_size: int = typer.Option(
        10_000, "--batch-size", min=1, max=1_000_000, help="Rows per transaction."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Clear the raw payload, user agent and provider detail of tracking events older than
    NEWSLETTER_EVENT_DETAIL_RETENTION_DAYS (the facts stay), delete stale attempt-limit rows.
    In short batches: safe beside a send, and an interrupted run is simply run again."""
    from newsletter.orm import utcnow
    from newsletter.scheduling import maintenance as housekeeping

    done = housekeeping.run(utcnow(), dry_run=dry_run, batch_size=batch_size)
    if as_json:
        print_json(done.as_dict())
    else:
        for line in done.lines():
            typer.echo(line)
