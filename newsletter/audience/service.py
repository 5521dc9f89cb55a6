"""Segments: saved, named filters over the list, counted live (issue 17), and the send that goes
to one.

A segment keeps a rule (audience/rules.py), never a list of people: who is in it is decided
each time it is read, from the list (subscribers), who was sent what (the ledger) and who read
it (tracking's firsts). So it sits above all three, beside `people`, and the doors (CLI, web,
API, scheduler) come here to count, list, export or send to one.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter import settings as settings_module
from newsletter.audience import repository, split
from newsletter.audience.models import Segment
from newsletter.audience.rules import Rule, RuleError, parse
from newsletter.errors import NotFound, Refused
from newsletter.issues import service as issues
from newsletter.issues import subjects
from newsletter.matchups import service as matchups
from newsletter.orm import utcnow
from newsletter.sending import service as sending
from newsletter.settings import get_settings
from newsletter.tracking import service as tracking
from subscribers import listing
from subscribers.models import Subscriber
from subscribers.service import mailable

__all__ = ["RuleError", "SegmentError", "SegmentNotFound"]

MAX_NAME = 100
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


class SegmentError(Refused):
    """A segment that cannot be made, changed or used as asked."""


class SegmentNotFound(SegmentError, NotFound):
    pass


# --- naming and finding -----------------------------------------------------------------------


def clean_name(raw: str) -> str:
    if _UNPRINTABLE.search(raw):
        raise SegmentError(
            "the segment's name contains a control character, NUL or a lone surrogate"
        )
    name = " ".join(raw.split())
    if not name:
        raise SegmentError("the segment needs a name")
    if len(name) > MAX_NAME:
        raise SegmentError(f"the segment's name is longer than {MAX_NAME} characters")
    return name


def find(session: Session, name_or_id: str) -> Segment:
    """By name (case aside), or by id ("3", "#3"); SegmentNotFound names what there is."""
    text = name_or_id.strip()
    segment = repository.by_name(session, " ".join(text.split())) if text else None
    digits = text.removeprefix("#")
    if segment is None and digits.isascii() and digits.isdigit() and len(digits) <= 18:
        segment = repository.get(session, int(digits))
    if segment is None:
        there = ", ".join(s.name for s in repository.all_segments(session)) or "none yet"
        raise SegmentNotFound(f"no segment named {name_or_id[:100]!r} (segments: {there})")
    return segment


def get(session: Session, segment_id: int) -> Segment:
    segment = repository.get(session, segment_id)
    if segment is None:
        raise SegmentNotFound(f"no segment with id {segment_id}")
    return segment


def all_segments(session: Session) -> list[Segment]:
    return repository.all_segments(session)


def rule_of(segment: Segment) -> Rule:
    return parse(segment.rule)


# --- making and changing --------------------------------------------------------------------


def checked_rule(session: Session, raw: Any, *, keep: Rule | None = None) -> Rule:
    """The rule as a door received it, checked against what the site and the list have: topics
    must be published categories (spelled as the site does), tags tags someone has. `keep`: the
    segment's rule before, whose names stay allowed (a category the site stopped publishing)."""
    rule = parse(raw)
    topics: list[str] = []
    if rule.topics:
        try:
            topics = matchups.categories_named(
                session, rule.topics, also=keep.topics if keep else ()
            )
        except Refused as exc:
            raise RuleError(f"rule.topics: {exc}") from None
    tags: list[str] = []
    if rule.tags:
        known = listing.tags_named(session, rule.tags)
        unknown = [t for t in rule.tags if t.casefold() not in {k.casefold() for k in known}]
        kept = set(keep.tags if keep else ())
        unknown = [t for t in unknown if t not in kept]
        if unknown:
            there = listing.tag_names(session)
            shown = ", ".join(there[:30]) + (" …" if len(there) > 30 else "") or "none imported"
            raise RuleError(f"rule.tags: nobody has the tag {unknown[0]!r} (tags: {shown})")
        tags = sorted({*known, *(t for t in rule.tags if t in kept)})
    return rule.model_copy(update={"topics": topics, "tags": tags})


def create(session: Session, name: str, raw_rule: Any, *, by: str = "") -> Segment:
    name = clean_name(name)
    rule = checked_rule(session, raw_rule)
    _name_free(session, name)
    try:
        with session.begin_nested():
            return repository.add(session, name, rule.to_json(), by[:320])
    except IntegrityError:
        raise SegmentError(f"a segment named {name!r} exists already") from None


def _name_free(session: Session, name: str, *, but: int | None = None) -> None:
    other = repository.by_name(session, name)
    if other is not None and other.id != but:
        raise SegmentError(f"a segment named {other.name!r} exists already")


def change(
    session: Session, segment_id: int, *, name: str | None = None, raw_rule: Any = None
) -> Segment:
    """A new name, a new rule (replacing the old one whole), or both."""
    segment = repository.get(session, segment_id, lock=True)
    if segment is None:
        raise SegmentNotFound(f"no segment with id {segment_id}")
    if name is not None:
        name = clean_name(name)
        _name_free(session, name, but=segment.id)
        segment.name = name
    if raw_rule is not None:
        segment.rule = checked_rule(session, raw_rule, keep=rule_of(segment)).to_json()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise SegmentError(f"a segment named {name!r} exists already") from None
    return segment


def issues_for(session: Session, segment: Segment) -> list[Any]:
    """The issues not yet sending that go to this segment."""
    return issues.segment_users(session, segment.id)


def delete(session: Session, segment_id: int) -> str:
    """Gone, unless an issue not yet sending goes to it (it would have nobody to go to): that is
    refused, naming the issues. Issues already sent keep what they went to (`issues.audience`)."""
    segment = repository.get(session, segment_id, lock=True)
    if segment is None:
        raise SegmentNotFound(f"no segment with id {segment_id}")
    waiting = issues.segment_users(session, segment_id)
    if waiting:
        named = ", ".join(f"{i.week} ({i.status.value})" for i in waiting)
        raise SegmentError(
            f"segment {segment.name!r} is the audience of issue {named}: send that to someone "
            "else first"
        )
    name = segment.name
    repository.remove(session, segment_id)
    return name


# --- who is in it ---------------------------------------------------------------------------


def _day_start(day: date) -> datetime:
    zone = settings_module.zone(get_settings().newsletter_timezone)
    return datetime.combine(day, time(0), tzinfo=zone)


def members(session: Session, segment: Segment | Rule) -> Select[Any]:
    """A SELECT of the ids of the segment's members now (any status unless the rule names
    some): for `IN`, a count, a page of the list, an export or a send."""
    rule = segment if isinstance(segment, Rule) else rule_of(segment)
    tags = listing.tags_named(session, rule.tags) if rule.tags else []
    stmt = listing.members_select(
        statuses=rule.statuses,
        topics=rule.topics,
        tags=tags,
        joined_from=_day_start(rule.joined_after) if rule.joined_after else None,
        joined_before=_day_start(rule.joined_before) if rule.joined_before else None,
        sources=rule.sources,
    )
    if rule.tags and not tags:
        stmt = stmt.where(false())  # the tags are gone from the list: nobody has them now
    if rule.engaged_in_last or rule.not_engaged_in_last:
        for n, engaged in ((rule.engaged_in_last, True), (rule.not_engaged_in_last, False)):
            if not n:
                continue
            recent = [issue_id for issue_id, _ in issues.last_sent_issues(session, n)]
            readers = Subscriber.id.in_(tracking.engaged_select(recent))
            stmt = stmt.where(readers if engaged else ~readers)
    if rule.never_opened:
        opened = tracking.opened_select(issues.mailed_issue_ids(session))
        stmt = stmt.where(~Subscriber.id.in_(opened))
    return stmt


def count(session: Session, segment: Segment | Rule) -> int:
    return int(
        session.scalar(select(func.count()).select_from(members(session, segment).subquery())) or 0
    )


def mailable_count(session: Session, segment: Segment | Rule) -> int:
    """How many of its members an issue sent now would go to (active, not paused, not
    suppressed)."""
    stmt = members(session, segment).where(mailable())
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def summary(session: Session, segment: Segment) -> dict[str, Any]:
    """The segment as the CLI's --json and the API show it, with its live counts."""
    rule = rule_of(segment)
    return {
        "id": segment.id,
        "name": segment.name,
        "rule": rule.to_json(),
        "described": rule.describe(),
        "members": count(session, segment),
        "mailable": mailable_count(session, segment),
        "created_by": segment.created_by,
        "created_at": segment.created_at.isoformat(),
        "updated_at": segment.updated_at.isoformat(),
    }


# --- sending to one -------------------------------------------------------------------------


def set_issue_audience(session: Session, issue_id: int, segment_id: int | None) -> bool:
    """The issue goes to this segment (None: everyone). Returns True if an approval was
    withdrawn (the editor approves it again for the new audience)."""
    # Locked: a deletion running at the same time either waits and then sees this issue (and
    # refuses), or deleted it first and this is refused.
    if segment_id is not None and repository.get(session, segment_id, lock=True) is None:
        raise SegmentNotFound(f"no segment with id {segment_id}")
    return issues.set_segment(session, issue_id, segment_id)


def audience_of(session: Session, issue_id: int) -> tuple[Segment | None, int]:
    """The segment an issue goes to (None: everyone) and how many it would be sent to now."""
    issue = issues.require(session, issue_id)
    if issue.segment_id is None:
        from subscribers.service import mailable_count as everyone

        return None, everyone(session)
    segment = repository.get(session, issue.segment_id)
    if segment is None:
        raise SegmentNotFound(
            f"issue {issue_id} goes to segment {issue.segment_id}, which no longer exists: "
            "choose who it goes to"
        )
    return segment, mailable_count(session, segment)


def start_send(session: Session, issue_id: int, *, now: datetime | None = None) -> bool:
    """The ledger's start_send with the issue's audience: everyone mailable, or the mailable
    members of its segment as they are now. What it went to is written on the issue. Every door
    that starts a send comes here (sending refuses an issue with a segment without its
    members).

    With a subject test (newsletter/audience/subject_tests.py), only the test's share of that
    audience is sent now, each with their subject; the rest is sent the winner later."""
    now = now or utcnow()
    issue = issues.get(session, issue_id)
    if issue is None:
        return sending.start_send(session, issue_id, now=now)
    audience: dict[str, Any] = {"segment": None}
    within: Select[Any] | None = None
    if issue.segment_id is not None:
        # Locked: nobody edits or deletes the segment while the snapshot reads its members.
        segment = repository.get(session, issue.segment_id, lock=True)
        if segment is None:
            raise SegmentNotFound(
                f"issue {issue_id} goes to segment {issue.segment_id}, which no longer exists: "
                "choose who it goes to; nothing was sent"
            )
        rule = rule_of(segment)
        within = members(session, rule)
        audience = {
            "segment_id": segment.id,
            "segment": segment.name,
            "rule": rule.to_json(),
            "described": rule.describe(),
        }
    test = subjects.get(session, issue_id)
    if test is not None and test.started_at is not None:
        test = None  # started already: this call will not start the send
    subject: ColumnElement[int] | None = None
    if test is not None:
        share = select(Subscriber.id).where(
            split.in_share_sql(issue_id, Subscriber.id.expression, test.share)
        )
        if within is not None:
            share = share.where(Subscriber.id.in_(within))
        within = share
        subject = split.subject_sql(issue_id, Subscriber.id.expression, len(test.subjects))
    if not sending.start_send(session, issue_id, now=now, within=within, subject=subject):
        return False
    if test is not None:
        subjects.mark_started(session, issue_id, now)
        audience["subject_test"] = {"share": test.share, "rest": "waiting"}
    audience["recipients"] = sending.status_counts(session, issue_id)["recipients"]
    issues.record_audience(session, issue_id, audience)
    return True


def rest_within(session: Session, issue_id: int) -> Select[Any] | None:
    """Who the rest of a subject test's audience is now: the members of the segment the send
    started with (by the rule it recorded, so editing or deleting the segment since changes
    nothing), or everyone mailable (None)."""
    issue = issues.require(session, issue_id)
    recorded = issue.audience or {}
    if recorded.get("rule") is None:
        return None
    return members(session, parse(recorded["rule"]))
