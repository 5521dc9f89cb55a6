"""All SQL about issues, their matchups and their links.

State changes are conditional UPDATEs (`... WHERE status IN (...)`): whoever loses a race sees
zero rows changed instead of overwriting the winner.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, exists, select, update
from sqlalchemy.orm import Session, selectinload

from newsletter.issues.models import (
    SEND_STARTED,
    Issue,
    IssueLink,
    IssueMatchup,
    IssueStatus,
    IssueVariant,
)
from newsletter.matchups.models import Matchup, MatchupTool
from newsletter.numbers import MAX_ROW_ID
from newsletter.orm import utcnow

# Not sending yet: who the issue goes to may still change.
_NOT_STARTED = (IssueStatus.DRAFT, IssueStatus.APPROVED, IssueStatus.SCHEDULED)


def get(session: Session, issue_id: int, *, lock: bool = False) -> Issue | None:
    """The issue with its items; `lock`: its row locked for this transaction (PostgreSQL;
    SQLite has one writer at a time) and read afresh once another's lock is released."""
    if not 0 < issue_id <= MAX_ROW_ID:  # beyond the column: no such issue, not an overflow
        return None
    stmt = select(Issue).where(Issue.id == issue_id).options(selectinload(Issue.items))
    if lock:
        stmt = stmt.with_for_update(of=Issue).execution_options(populate_existing=True)
    return session.scalars(stmt).one_or_none()


def set_values(session: Session, issue_id: int, **values: Any) -> None:
    session.execute(
        update(Issue)
        .where(Issue.id == issue_id)
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


def segment_users(session: Session, segment_id: int) -> list[Issue]:
    return list(
        session.scalars(
            select(Issue)
            .where(Issue.segment_id == segment_id, Issue.status.in_(_NOT_STARTED))
            .order_by(Issue.week)
        )
    )


def mailed_issue_ids(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Issue.id).where(Issue.send_started_at.is_not(None)).order_by(Issue.id)
        )
    )


def status_of(session: Session, issue_id: int) -> IssueStatus | None:
    if not 0 < issue_id <= MAX_ROW_ID:
        return None
    status = session.scalar(select(Issue.status).where(Issue.id == issue_id))
    return IssueStatus(status) if status is not None else None


def resumed_at(session: Session, issue_id: int) -> datetime | None:
    if not 0 < issue_id <= MAX_ROW_ID:
        return None
    return session.scalar(select(Issue.resumed_at).where(Issue.id == issue_id))


def get_by_week(session: Session, week: str) -> Issue | None:
    stmt = select(Issue).where(Issue.week == week).options(selectinload(Issue.items))
    return session.scalars(stmt).one_or_none()


def list_all(session: Session) -> list[Issue]:
    stmt = select(Issue).order_by(Issue.week.desc()).options(selectinload(Issue.items))
    return list(session.scalars(stmt))


def previous_issue(session: Session, week: str) -> Issue | None:
    """The latest earlier week's issue that was not cancelled: its cut-off is our start."""
    stmt = (
        select(Issue)
        .where(Issue.week < week, Issue.status != IssueStatus.CANCELLED)
        .order_by(Issue.week.desc())
        .limit(1)
    )
    return session.scalars(stmt).one_or_none()


def candidate_matchups(
    session: Session, *, after: datetime | None, until: datetime, issue_id: int | None
) -> list[Matchup]:
    """Matchups published in (after, until] that no sent (or sending) issue carries."""
    spoken_for = (
        select(IssueMatchup.id)
        .join(Issue, Issue.id == IssueMatchup.issue_id)
        .where(
            IssueMatchup.matchup_id == Matchup.id,
            IssueMatchup.excluded.is_(False),
            Issue.status.in_(SEND_STARTED),
        )
    )
    if issue_id is not None:
        spoken_for = spoken_for.where(Issue.id != issue_id)
    stmt = select(Matchup).where(Matchup.published_at <= until, ~exists(spoken_for))
    if after is not None:
        stmt = stmt.where(Matchup.published_at > after)
    stmt = stmt.order_by(Matchup.published_at, Matchup.id).options(
        selectinload(Matchup.tools), selectinload(Matchup.reviews)
    )
    return list(session.scalars(stmt))


def matchups_of(session: Session, issue: Issue) -> dict[int, Matchup]:
    ids = [item.matchup_id for item in issue.items]
    if not ids:
        return {}
    stmt = (
        select(Matchup)
        .where(Matchup.id.in_(ids))
        .options(selectinload(Matchup.tools), selectinload(Matchup.reviews))
    )
    return {m.id: m for m in session.scalars(stmt)}


def add(session: Session, issue: Issue) -> Issue:
    session.add(issue)
    session.flush()
    return issue


def remove_items(session: Session, item_ids: Iterable[int]) -> None:
    ids = list(item_ids)
    if ids:
        session.execute(delete(IssueMatchup).where(IssueMatchup.id.in_(ids)))


def transition(
    session: Session,
    issue_id: int,
    from_statuses: Sequence[IssueStatus],
    to_status: IssueStatus,
    *,
    when: ColumnElement[bool] | None = None,
    **values: Any,
) -> bool:
    """Move an issue to `to_status` only if it is in one of `from_statuses` (and `when`
    holds: the ledger's "no delivery still open"); True if it moved. The only UPDATE of
    issues.status."""
    conditions = [Issue.id == issue_id, Issue.status.in_(list(from_statuses))]
    if when is not None:
        conditions.append(when)
    result = session.execute(
        update(Issue)
        .where(*conditions)
        .values(status=to_status, **values)
        .execution_options(synchronize_session=False)
    )
    changed = bool(getattr(result, "rowcount", 0))
    if changed:
        session.expire_all()
    return changed


def set_times(session: Session, issue_id: int, **values: datetime) -> None:
    """Set an issue's time columns (approved_at, send_started_at, sent_at) as given."""
    session.execute(
        update(Issue)
        .where(Issue.id == issue_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


def unnoticed_pauses(session: Session) -> list[Issue]:
    stmt = select(Issue).where(
        Issue.status == IssueStatus.PAUSED,
        Issue.pause_reason.is_not(None),
        Issue.pause_noticed_at.is_(None),
    )
    return list(session.scalars(stmt.order_by(Issue.id)))


def due_issues(session: Session, now: datetime) -> list[Issue]:
    """Approved or scheduled issues whose send time has come (approved with no time: now)."""
    stmt = (
        select(Issue)
        .where(
            Issue.status.in_([IssueStatus.APPROVED, IssueStatus.SCHEDULED]),
            Issue.scheduled_at.is_not(None),
            Issue.scheduled_at <= now,
        )
        .order_by(Issue.scheduled_at, Issue.id)
    )
    return list(session.scalars(stmt))


def link_for(session: Session, issue_id: int, key: str) -> IssueLink | None:
    stmt = select(IssueLink).where(IssueLink.issue_id == issue_id, IssueLink.key == key)
    return session.scalars(stmt).one_or_none()


def links_of(session: Session, issue_id: int) -> list[IssueLink]:
    stmt = select(IssueLink).where(IssueLink.issue_id == issue_id).order_by(IssueLink.id)
    return list(session.scalars(stmt))


def record_links(session: Session, issue_id: int, links: Iterable[IssueLink]) -> None:
    """Add or refresh the issue's links. Never removes one: a test email of an earlier draft
    may still carry it, and it still points where the issue once did."""
    existing = {link.key: link for link in links_of(session, issue_id)}
    for link in links:
        current = existing.get(link.key)
        if current is None:
            link.issue_id = issue_id
            session.add(link)
            existing[link.key] = link
        else:
            current.url, current.label, current.matchup_id = link.url, link.label, link.matchup_id
    session.flush()


def published_before(session: Session, week: str) -> Issue | None:
    """The latest issue of an earlier week that readers received (sending, paused or sent)."""
    stmt = (
        select(Issue)
        .where(
            Issue.week < week,
            Issue.status.in_(SEND_STARTED),
        )
        .order_by(Issue.week.desc())
        .limit(1)
    )
    return session.scalars(stmt).one_or_none()


def issue_matchups(session: Session, issue_id: int) -> list[tuple[int, str, list[str]]]:
    """(matchup id, slug, [tool 0 name, tool 1 name]) of the issue's included matchups, in its
    order."""
    stmt = (
        select(Matchup.id, Matchup.slug)
        .join(IssueMatchup, IssueMatchup.matchup_id == Matchup.id)
        .where(IssueMatchup.issue_id == issue_id, IssueMatchup.excluded.is_(False))
        .order_by(IssueMatchup.position, Matchup.id)
    )
    rows = list(session.execute(stmt))
    names: dict[int, list[str]] = {m: ["", ""] for m, _ in rows}
    if rows:
        tools = select(MatchupTool.matchup_id, MatchupTool.position, MatchupTool.name).where(
            MatchupTool.matchup_id.in_(names)
        )
        for matchup_id, position, name in session.execute(tools):
            names[matchup_id][position] = name
    return [(m, slug, names[m]) for m, slug in rows]


def matchup_in_issue(session: Session, issue_id: int, matchup_id: int) -> bool:
    stmt = select(IssueMatchup.id).where(
        IssueMatchup.issue_id == issue_id, IssueMatchup.matchup_id == matchup_id
    )
    return session.scalars(stmt).first() is not None


def latest_sent_issue_id(session: Session) -> int | None:
    """The issue whose send started last (sending, paused or sent)."""
    stmt = (
        select(Issue.id)
        .where(Issue.status.in_(SEND_STARTED))
        .order_by(Issue.send_started_at.desc().nulls_last(), Issue.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def last_sent_issues(session: Session, count: int) -> list[tuple[int, datetime | None]]:
    """(id, sent at) of the latest `count` issues whose send finished, newest week first."""
    stmt = (
        select(Issue.id, Issue.sent_at)
        .where(Issue.status == IssueStatus.SENT)
        .order_by(Issue.week.desc())
        .limit(count)
    )
    return [(row[0], row[1]) for row in session.execute(stmt)]


def variants_of(session: Session, issue_id: int) -> list[IssueVariant]:
    return list(
        session.scalars(
            select(IssueVariant)
            .where(IssueVariant.issue_id == issue_id)
            .order_by(IssueVariant.mask)
        )
    )


def variant(session: Session, issue_id: int, mask: int) -> IssueVariant | None:
    return session.get(IssueVariant, (issue_id, mask))


def add_variant(session: Session, variant: IssueVariant) -> None:
    session.add(variant)
    session.flush()
