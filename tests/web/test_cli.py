"""`newsletter users …` and `newsletter serve` refusals."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from newsletter.accounts.service import authenticate
from newsletter.cli import app
from newsletter.db import transaction

runner = CliRunner()


def test_users_add_list_and_token(db_url: str) -> None:
    added = runner.invoke(
        app,
        ["users", "add", "Ed@Example.com", "--role", "editor", "--password-stdin"],
        input="a long password!\n",
    )
    assert added.exit_code == 0, added.output
    listed = json.loads(runner.invoke(app, ["users", "list", "--json"]).stdout)
    assert listed[0]["email"] == "ed@example.com" and listed[0]["role"] == "editor"
    token = runner.invoke(app, ["users", "token", "ed@example.com"])
    assert token.exit_code == 0 and token.stdout.startswith("nlt_")
    again = runner.invoke(
        app,
        ["users", "add", "ed@example.com", "--role", "admin", "--password-stdin"],
        input="a long password!\n",
    )
    assert again.exit_code != 0 and "already exists" in again.output
    reset = runner.invoke(
        app, ["users", "password", "ed@example.com", "--password-stdin"], input="another long one\n"
    )
    assert reset.exit_code == 0, reset.output
    weak = runner.invoke(
        app, ["users", "password", "ed@example.com", "--password-stdin"], input="x\n"
    )
    assert weak.exit_code != 0
    unknown = runner.invoke(
        app,
        ["users", "password", "nobody@example.com", "--password-stdin"],
        input="long enough pw\n",
    )
    assert unknown.exit_code != 0
    with transaction() as session:
        assert authenticate(session, "ed@example.com", "another long one") is not None
        assert authenticate(session, "ed@example.com", "a long password!") is None
    promoted = runner.invoke(app, ["users", "role", "ED@example.com", "--role", "admin", "--json"])
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout) == {
        "id": listed[0]["id"],
        "email": "ed@example.com",
        "role": "admin",
    }


def test_users_add_refuses_bad_input(db_url: str) -> None:
    role = runner.invoke(
        app,
        ["users", "add", "a@example.com", "--role", "owner", "--password-stdin"],
        input="x" * 20,
    )
    assert role.exit_code != 0 and "unknown role 'owner'" in role.output
    weak = runner.invoke(
        app,
        ["users", "add", "a@example.com", "--role", "admin", "--password-stdin"],
        input="short\n",
    )
    assert weak.exit_code != 0 and "at least 12 characters" in weak.output


def test_serve_refuses_a_public_address_with_the_development_key(monkeypatch, db_url: str) -> None:
    from newsletter.settings import DEV_SECRET, reset_settings

    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", DEV_SECRET)
    reset_settings()
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", "8123"])
    assert result.exit_code != 0
    assert "development NEWSLETTER_SECRET_KEY" in result.output
