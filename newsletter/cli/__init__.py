"""The `newsletter` command. Each domain owns its group; this file only assembles them.

Typer builds every command of every group before it runs one (even for `--help`), so the group
modules import at their top only what their signatures need; each command imports the
database, the domains and their libraries when it runs (tests/foundation/test_cli_start.py)."""

from __future__ import annotations

import typer

from newsletter.cli import sending as _sending_cli  # noqa: F401  (adds send commands to `issue`)
from newsletter.cli.issues import app as issue_app
from newsletter.cli.maintenance import maintenance
from newsletter.cli.matchups import app as matchups_app
from newsletter.cli.segments import app as segments_app
from newsletter.cli.serve import serve
from newsletter.cli.stats import app as stats_app
from newsletter.cli.subscribers import app as subscribers_app
from newsletter.cli.support import JsonOption, print_json, require_suppression_key
from newsletter.cli.users import app as users_app

app = typer.Typer(
    help="Weekly AI Tool Verdicts: import matchups, build the weekly issue, send it, read the numbers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(matchups_app, name="matchups")
app.add_typer(issue_app, name="issue")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(segments_app, name="segments")
app.add_typer(stats_app, name="stats")
app.add_typer(users_app, name="users")
app.command("serve")(serve)
app.command("maintenance")(maintenance)


@app.callback()
def _every_command(context: typer.Context) -> None:
    # Most commands sign something (mail links, confirmations, tokens); refusing the published
    # key before any of them starts means no send is left half-done by a key refused mid-batch.
    from newsletter.cli.support import fail
    from newsletter.security.keys import InsecureSecretKey, require_signing_key

    try:
        require_signing_key()
    except InsecureSecretKey as exc:
        fail(str(exc), code=2)
    # Every command that reads or writes the list hashes addresses with the suppression key.
    # Help reads no database: it works anywhere, leaves no empty SQLite file behind, and does
    # not load SQLAlchemy to print a usage.
    if context.invoked_subcommand not in ("init", "demo") and not _asking_for_help():
        from newsletter.settings import get_settings

        _require_database(get_settings().database_url)
        require_suppression_key()


def _asking_for_help() -> bool:
    """`newsletter stats --help` works anywhere. The group's callback runs before the
    subcommand reads its own --help, and Click does not show it the rest of the command
    line, so read the process's arguments."""
    import sys

    return any(arg in ("--help", "-h") for arg in sys.argv[1:])


def _require_database(url: str) -> None:
    """Stop with what to do when there is no database here, or not this version's schema.

    Run in the wrong directory, a command used to create an empty SQLite file there and then
    fail with a traceback ("no such table: issues")."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from newsletter.cli.support import fail
    from newsletter.db import cannot_open, is_sqlite, shown_url
    from newsletter.migrate import HEAD_REVISION, current_revision

    shown = shown_url(url)
    if is_sqlite(url) and not _sqlite_file_exists(url):
        fail(
            f"no database at {make_url(url).database} (DATABASE_URL={shown}): run "
            "`newsletter init` first, in the directory that keeps the data, or set DATABASE_URL",
            code=2,
        )
    try:
        revision = current_revision(url)
    except SQLAlchemyError as exc:
        fail(cannot_open(url, exc), code=2)
    head = HEAD_REVISION
    if revision is None:
        fail(f"the database {shown} has no schema yet: run `newsletter init`", code=2)
    elif revision != head:
        fail(
            f"the database {shown} is at schema {revision}; this version needs {head}: run "
            "`newsletter init` to migrate it",
            code=2,
        )


def _sqlite_file_exists(url: str) -> bool:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    database = make_url(url).database
    return bool(database) and database != ":memory:" and Path(str(database)).exists()


@app.command()
def init(as_json: bool = JsonOption) -> None:
    """Create the database, or migrate it to the latest schema (DATABASE_URL)."""
    from newsletter.migrate import upgrade
    from newsletter.settings import get_settings

    before, after = upgrade()
    require_suppression_key()
    url = get_settings().database_url
    if as_json:
        print_json({"database": url, "from": before, "to": after})
    elif before == after:
        typer.echo(f"database is up to date (revision {after})")
    else:
        typer.echo(f"database migrated from {before or 'empty'} to {after}")


@app.command()
def demo() -> None:
    """Run the whole weekly job on the embedded default (SQLite + outbox), end to end."""
    from newsletter.demo import run_demo

    run_demo()


def main() -> None:
    from newsletter.errors import Refused

    try:
        app()
    except Refused as exc:
        # A domain's refusal that its command did not catch (a bad setting, say): the
        # sentence, not a traceback. Outside the app, so not `fail`: typer.Exit is the app's.
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
