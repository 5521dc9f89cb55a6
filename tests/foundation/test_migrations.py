"""The migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from newsletter.db import get_engine
from newsletter.migrate import current_revision, head_revision, upgrade
from newsletter.orm import Base
from subscribers.search import include_object


def test_migrations_create_every_table_at_head(db_url: str) -> None:
    assert current_revision(db_url) == head_revision(db_url)
    tables = set(inspect(get_engine(db_url)).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_models_and_migrations_agree(db_url: str) -> None:
    with get_engine(db_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], (
        f"models changed without a migration (add a revision under newsletter/migrations/versions: the released ones are never regenerated): {diff}"
    )


def test_upgrade_is_idempotent(db_url: str) -> None:
    before, after = upgrade(db_url)
    assert before == after == head_revision(db_url)


def test_the_head_every_command_checks_against_is_alembics_head(tmp_path: Path) -> None:
    """The CLI compares the database with migrate.HEAD_REVISION (no Alembic import per
    command): a new revision must move it too."""
    from newsletter.migrate import HEAD_REVISION, head_revision

    assert head_revision(f"sqlite:///{tmp_path / 'any.db'}") == HEAD_REVISION
