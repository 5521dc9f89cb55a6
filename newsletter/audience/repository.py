"""All SQL about segments (imported from inside newsletter/audience only, a contract)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.audience.models import Segment
from newsletter.numbers import MAX_ROW_ID


def get(session: Session, segment_id: int, *, lock: bool = False) -> Segment | None:
    if not 0 < segment_id <= MAX_ROW_ID:
        return None
    stmt = select(Segment).where(Segment.id == segment_id)
    if lock:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).one_or_none()


def by_name(session: Session, name: str) -> Segment | None:
    """Case aside: "Engaged" finds "engaged" (few segments: compared here, Unicode case)."""
    wanted = name.casefold()
    return next((s for s in all_segments(session) if s.name.casefold() == wanted), None)


def all_segments(session: Session) -> list[Segment]:
    # A to Z as people read it (case aside), the same on both engines whatever their collation.
    found = session.scalars(select(Segment).order_by(Segment.id))
    return sorted(found, key=lambda s: (s.name.casefold(), s.id))


def add(session: Session, name: str, rule: dict[str, Any], created_by: str) -> Segment:
    segment = Segment(name=name, rule=rule, created_by=created_by)
    session.add(segment)
    session.flush()
    return segment


def remove(session: Session, segment_id: int) -> None:
    session.execute(delete(Segment).where(Segment.id == segment_id))
