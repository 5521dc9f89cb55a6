"""What the editor's pages show of the scheduler: whether one is running, and when it plans to
send an issue (scheduling/repository.py is the scheduler's own)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from newsletter.scheduling import repository


def planned_send_for(session: Session, issue_id: int) -> datetime | None:
    return repository.planned_send_for(session, issue_id)


def last_seen(session: Session) -> datetime | None:
    """When a running scheduler last said so (every tick); None if none ever has."""
    return repository.last_seen(session)
