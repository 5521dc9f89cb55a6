"""`newsletter users …`: staff accounts for the web app."""

from __future__ import annotations

import os
import sys

import typer

from newsletter.cli.support import JsonOption, fail, print_json

app = typer.Typer(help="Staff accounts (admins and editors) for the web app.", no_args_is_help=True)

PASSWORD_ENV = "NEWSLETTER_USER_PASSWORD"  # noqa: S105 - the name of a variable, not a secret


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            fail("--password-stdin given but stdin is empty")
        return line.rstrip("\r\n")
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        fail(f"no password: use --password-stdin or set {PASSWORD_ENV} when not on a terminal")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@app.command("add")
def add(
    email: str = typer.Argument(..., help="The person's email address (their login)."),
    role: str = typer.Option(
        "editor", "--role", help="editor (the default: issues only) or admin (also the list)."
    ),
    password_stdin: bool = typer.Option(
        False,
        "--password-stdin",
        help=f"Read the password from stdin (else ${PASSWORD_ENV}, else a prompt).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Create a staff account."""
    from newsletter.accounts.service import AccountError, create_user, parse_role
    from newsletter.db import transaction

    try:
        parsed_role = parse_role(role)
        password = _read_password(password_stdin)
        with transaction() as session:
            user = create_user(session, email, password, parsed_role)
            result = {"id": user.id, "email": user.email, "role": user.role.value}
    except AccountError as exc:
        fail(str(exc))
    if as_json:
        print_json(result)
    else:
        typer.echo(f"created {result['role']} {result['email']}")


@app.command("password")
def password(
    email: str = typer.Argument(..., help="The account's email address."),
    password_stdin: bool = typer.Option(
        False,
        "--password-stdin",
        help=f"Read the new password from stdin (else ${PASSWORD_ENV}, else a prompt).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Set a new password for a staff account (someone who forgot theirs)."""
    from newsletter.accounts.service import AccountError, find, set_password
    from newsletter.db import transaction

    try:
        new_password = _read_password(password_stdin)
        with transaction() as session:
            user = find(session, email)
            set_password(session, user, new_password)
            result = {"id": user.id, "email": user.email, "role": user.role.value}
    except AccountError as exc:
        fail(str(exc))
    if as_json:
        print_json(result)
    else:
        typer.echo(f"new password set for {result['email']}")


@app.command("list")
def list_users(as_json: bool = JsonOption) -> None:
    """Every staff account with its role."""
    from newsletter.accounts.service import list_all
    from newsletter.db import transaction

    with transaction() as session:
        rows = [
            {
                "id": u.id,
                "email": u.email,
                "role": u.role.value,
                "has_api_token": u.api_token_hash is not None,
                "created_at": u.created_at.isoformat(),
            }
            for u in list_all(session)
        ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no users yet: `newsletter users add EMAIL --role admin`")
    for row in rows:
        token = "  (api token)" if row["has_api_token"] else ""
        typer.echo(f"{row['email']:<40} {row['role']}{token}")


@app.command("role")
def set_role(
    email: str = typer.Argument(...),
    role: str = typer.Option(
        "editor", "--role", help="editor (the default: issues only) or admin (also the list)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change a staff account's role."""
    from newsletter.accounts.service import AccountError, find, parse_role
    from newsletter.accounts.service import set_role as change_role
    from newsletter.db import transaction

    try:
        with transaction() as session:
            user = find(session, email)
            change_role(session, user, parse_role(role))
            result = {"id": user.id, "email": user.email, "role": user.role.value}
    except AccountError as exc:
        fail(str(exc))
    if as_json:
        print_json(result)
    else:
        typer.echo(f"{result['email']} is now {result['role']}")


@app.command("token")
def token(
    email: str = typer.Argument(...),
    revoke: bool = typer.Option(False, "--revoke", help="Remove the token instead."),
    as_json: bool = JsonOption,
) -> None:
    """Create (or replace) the user's API token for the JSON API; it is shown only once."""
    from newsletter.accounts.service import AccountError, find, issue_api_token, revoke_api_token
    from newsletter.db import transaction

    try:
        with transaction() as session:
            user = find(session, email)
            if revoke:
                revoke_api_token(session, user)
                value = None
            else:
                value = issue_api_token(session, user)
    except AccountError as exc:
        fail(str(exc))
    if as_json:
        print_json({"email": email.strip().lower(), "token": value})
    elif value is None:
        typer.echo("token revoked")
    else:
        typer.echo(value)
