"""`newsletter --help` and short commands start without loading what they do not use (issue 19).

Typer builds every command of every group before it runs one, so a heavy import at the top of
any newsletter/cli module is paid by every help. These tests run the real command in a fresh
interpreter under `python -X importtime` and check which modules it loaded: an import-level
check, not a timing one (`python -m bench.cli_start` has the times).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.cli.sending import DeliveryStatusChoice
from newsletter.sending.models import DeliveryStatus

# What a help never needs: the database and its toolkit, the web stack, the renderer, the
# transports, the scheduler, the worker.
NOT_FOR_HELP = [
    "sqlalchemy",
    "alembic",
    "psycopg",
    "fastapi",
    "starlette",
    "uvicorn",
    "mjml",
    "css_inline",
    "jinja2",
    "sendgrid",
    "apscheduler",
    "argon2",
    "newsletter.db",
    "newsletter.orm",
    "newsletter.issues",
    "newsletter.sending",
    "newsletter.mail",
    "newsletter.tracking",
    "newsletter.web",
    "newsletter.people",
    "subscribers.models",
    "subscribers.importer",
]

# A short command reads the database, and still not the web app, the renderer, the transports
# or the worker.
NOT_FOR_A_SHORT_COMMAND = [
    "fastapi",
    "starlette",
    "uvicorn",
    "mjml",
    "css_inline",
    "jinja2",
    "sendgrid",
    "apscheduler",
    "newsletter.issues",
    "newsletter.sending",
    "newsletter.mail",
    "newsletter.web",
]

GROUPS = ["subscribers", "issue", "stats", "matchups", "users", "serve", "init", "demo"]


def _newsletter(args: list[str], cwd: Path, database: Path) -> tuple[str, set[str]]:
    """Run the `newsletter` command; its standard output and every module it imported."""
    script = Path(sys.executable).parent / "newsletter"
    command = (
        [str(script)] if script.exists() else ["-c", "from newsletter.cli import main; main()"]
    )
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}", "COLUMNS": "100"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 0, "\n".join(line for line in lines if "import time" not in line)
    imported = {
        line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")
    } - {"package"}  # the header line's last column
    assert "newsletter.cli" in imported  # the check below looks at the right process
    return done.stdout, imported


def _loaded(imported: set[str], unwanted: list[str]) -> list[str]:
    return sorted(
        name
        for name in imported
        for prefix in unwanted
        if name == prefix or name.startswith(f"{prefix}.")
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        *([group, "--help"] for group in GROUPS),
        ["issue", "deliveries", "--help"],
        ["subscribers", "import", "--help"],
    ],
    ids=" ".join,
)
def test_help_loads_no_database_no_web_no_worker(args: list[str], tmp_path: Path) -> None:
    database = tmp_path / "absent.db"
    out, imported = _newsletter(args, tmp_path, database)
    assert "Usage" in out
    assert _loaded(imported, NOT_FOR_HELP) == []
    assert not database.exists()  # help works anywhere and leaves no SQLite file behind


def test_a_short_command_loads_only_what_it_uses(tmp_path: Path) -> None:
    database = tmp_path / "newsletter.db"
    _newsletter(["init"], tmp_path, database)
    out, imported = _newsletter(["users", "list"], tmp_path, database)
    assert out.startswith("no users yet")
    assert "sqlalchemy" in imported and "newsletter.accounts.service" in imported
    assert _loaded(imported, NOT_FOR_A_SHORT_COMMAND) == []


def test_the_status_choices_are_the_ledgers_own() -> None:
    # `issue deliveries --status` lists a copy (the real enum would load SQLAlchemy for help).
    assert [s.value for s in DeliveryStatusChoice] == [s.value for s in DeliveryStatus]
