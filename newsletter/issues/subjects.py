"""An issue's subject test, as the issue keeps it (the table's owner): the subjects, the share
and the wait an editor set, when the test started and what decided it.

The test's course (who is in the share, the figures, the winner, the send to the rest) is
newsletter/audience/subject_tests.py's; this module only checks and writes the rows.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from newsletter.issues import verdicts
from newsletter.issues.models import Issue, IssueStatus, SubjectTest
from newsletter.issues.service import EDITABLE, IssueError, _editable, require
from newsletter.orm import utcnow

MIN_SUBJECTS = 2
MAX_SUBJECTS = 4
# As long as an editor's own subject may be (issues.service.edit_issue).
MAX_SUBJECT_CHARS = verdicts.SUBJECT_CHARS + 60
SHARE_RANGE = (1, 100)  # percent of the audience in the test
WAIT_RANGE = (1, 7 * 24 * 60)  # minutes: at most a week


class SubjectTestError(IssueError):
    """A subject test refused, with what is wrong and where."""


# Characters a reader cannot see that change what a subject says or looks like: zero-width
# spaces and joiners where they join nothing, the byte-order mark, and the bidirectional
# controls that can make a subject read backwards (U+202A-202E, U+2066-2069, U+200E-200F).
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u200e\u200f\u202a-\u202e\u2066-\u2069\u180e]")


def _clean(text: str) -> str:
    """One line, NFC (an accent typed as a combining mark counts as one character), without
    the invisible characters above."""
    flat = verdicts.header_safe(text, len(text) + 1)  # one line, its spaces collapsed
    return " ".join(_INVISIBLE.sub("", unicodedata.normalize("NFC", flat)).split())


def _same(text: str) -> str:
    """What makes two subjects the same to a reader: case, width (NFKC) and every
    formatting character (category Cf) aside."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


def clean_subjects(raw: Sequence[str], *, skip_blank: bool = False) -> list[str]:
    """The subjects as they will be sent: one line each, checked; refused with the number of the
    one that is wrong (1 for the first). `skip_blank`: a blank one is no subject (the web form's
    empty fields); otherwise it is refused."""
    subjects: list[str] = []
    for number, text in enumerate(raw, start=1):
        if not isinstance(text, str):
            raise SubjectTestError(f"subject {number} is not text")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise SubjectTestError(
                f"subject {number} is not valid text (a lone surrogate)"
            ) from None
        if not text.strip():
            if skip_blank:
                continue
            raise SubjectTestError(f"subject {number} is blank")
        flat = _clean(text)
        if not _same(flat).strip():
            raise SubjectTestError(f"subject {number} has no printable text")
        if len(flat) > MAX_SUBJECT_CHARS:
            raise SubjectTestError(
                f"subject {number} is {len(flat):,} characters: at most {MAX_SUBJECT_CHARS}"
            )
        subjects.append(flat)
    if not MIN_SUBJECTS <= len(subjects) <= MAX_SUBJECTS:
        raise SubjectTestError(
            f"a subject test needs {MIN_SUBJECTS} to {MAX_SUBJECTS} subjects, {len(subjects)} given"
        )
    seen: dict[str, int] = {}
    for number, text in enumerate(subjects, start=1):
        key = _same(text)
        if key in seen:
            raise SubjectTestError(f"subjects {seen[key]} and {number} are the same")
        seen[key] = number
    return subjects


def _in_range(name: str, value: int, bounds: tuple[int, int], unit: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SubjectTestError(f"{name} must be a whole number of {unit}")
    low, high = bounds
    if not low <= value <= high:
        raise SubjectTestError(f"{name} must be {low} to {high:,} {unit}, not {value:,}")
    return value


def get(session: Session, issue_id: int, *, lock: bool = False) -> SubjectTest | None:
    query = select(SubjectTest).where(SubjectTest.issue_id == issue_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def _require_editable(session: Session, issue_id: int) -> Issue:
    issue = require(session, issue_id, lock=True)
    if issue.status not in EDITABLE:
        raise SubjectTestError(
            f"issue {issue.id} ({issue.week}) is {issue.status.value}: too late to change its "
            "subject test"
        )
    return issue


def set_test(
    session: Session,
    issue_id: int,
    subjects: Sequence[str],
    *,
    share: int,
    wait_minutes: int,
    by: str = "",
    skip_blank: bool = False,
) -> bool:
    """Give the issue a subject test (or change it). An approval is withdrawn, as for any
    edit. Returns True if it was."""
    cleaned = clean_subjects(subjects, skip_blank=skip_blank)
    _in_range("the test share", share, SHARE_RANGE, "percent")
    _in_range("the wait", wait_minutes, WAIT_RANGE, "minutes")
    issue = _require_editable(session, issue_id)
    found = get(session, issue_id, lock=True)
    values = {"subjects": cleaned, "share": share, "wait_minutes": wait_minutes}
    if found is not None and all(getattr(found, k) == v for k, v in values.items()):
        return False
    reopened = _editable(session, issue)
    if found is None:
        session.add(SubjectTest(issue_id=issue_id, created_by=by, **values))
    else:
        for key, value in values.items():
            setattr(found, key, value)
        found.updated_at = utcnow()
    session.flush()
    return reopened


def remove_test(session: Session, issue_id: int) -> bool:
    """The issue goes back to one subject. Returns True if an approval was withdrawn."""
    issue = _require_editable(session, issue_id)
    found = get(session, issue_id, lock=True)
    if found is None:
        return False
    reopened = _editable(session, issue)
    session.delete(found)
    session.flush()
    return reopened


def mark_started(session: Session, issue_id: int, now: datetime) -> None:
    session.execute(
        update(SubjectTest)
        .where(SubjectTest.issue_id == issue_id, SubjectTest.started_at.is_(None))
        .values(started_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )


def record_decision(
    session: Session,
    issue_id: int,
    *,
    winner: int,
    by: str,
    figures: dict[str, Any],
    now: datetime,
) -> bool:
    """Write the winner, once: False if the test was decided already (another worker or the
    editor got there first) or has not started."""
    result = session.execute(
        update(SubjectTest)
        .where(
            SubjectTest.issue_id == issue_id,
            SubjectTest.started_at.is_not(None),
            SubjectTest.decided_at.is_(None),
        )
        .values(winner=winner, decided_by=by, decided_at=now, decision=figures, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    decided = bool(getattr(result, "rowcount", 0))
    if decided:
        session.expire_all()
    return decided


def no_test_waiting(issue_id: int) -> ColumnElement[bool]:
    """True unless the issue's test started and its winner is still to be chosen: what "sent"
    also waits for (in the same UPDATE as the ledger's "no delivery open")."""
    return ~(
        select(SubjectTest.issue_id)
        .where(
            SubjectTest.issue_id == issue_id,
            SubjectTest.started_at.is_not(None),
            SubjectTest.decided_at.is_(None),
        )
        .exists()
    )


def waiting(session: Session) -> list[SubjectTest]:
    """Tests started and not yet decided, of issues mid-send (the scheduler's round)."""
    return list(
        session.scalars(
            select(SubjectTest)
            .join(Issue, Issue.id == SubjectTest.issue_id)
            .where(
                SubjectTest.started_at.is_not(None),
                SubjectTest.decided_at.is_(None),
                Issue.status == IssueStatus.SENDING,
            )
            .order_by(SubjectTest.issue_id)
        )
    )


def subject_texts(session: Session, issue_id: int) -> list[str]:
    """The subjects deliveries.subject numbers (1 for the first); empty without a test."""
    found = get(session, issue_id)
    return list(found.subjects) if found is not None else []


def to_json(test: SubjectTest | None) -> dict[str, Any] | None:
    if test is None:
        return None
    return {
        "subjects": list(test.subjects),
        "share": test.share,
        "wait_minutes": test.wait_minutes,
        "started_at": _iso(test.started_at),
        "winner": test.winner,
        "decided_at": _iso(test.decided_at),
        "decided_by": test.decided_by,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
