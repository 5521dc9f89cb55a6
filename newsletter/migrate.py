"""Create or upgrade the database schema with Alembic (`newsletter init`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.db import get_engine
from newsletter.settings import get_settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision under migrations/versions (tests/foundation/test_migrations.py holds it to
# Alembic's own answer): every command checks the database against it before it starts, and
# importing Alembic for that cost a third of a second a command.
HEAD_REVISION = "0019_subject_tests"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None) -> tuple[str | None, str]:
    """Migrate to head; returns (revision before, revision after)."""
    url = url or get_settings().database_url
    from alembic import command

    before = current_revision(url)
    command.upgrade(alembic_config(url), "head")
    return before, head_revision(url)


def current_revision(url: str) -> str | None:
    """The revision the database is at (None: no schema yet), read without Alembic."""
    from sqlalchemy import inspect, text

    with get_engine(url).connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = list(conn.execute(text("SELECT version_num FROM alembic_version")))
        return str(rows[0][0]) if len(rows) == 1 else None


def head_revision(url: str) -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert head is not None
    return head
