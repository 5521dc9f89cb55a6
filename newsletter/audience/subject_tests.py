"""Subject tests (issue 17): up to four subjects tried on a share of an issue's audience, then
the winner sent to everyone else.

The course of one test:

1. An editor gives the subjects, the share and the wait (`set_test`) before the send; that
   withdraws an approval, as any edit does.
2. The send starts (audience.service.start_send): only the share is sent, each person the
   subject `split.subject_number` gives them, written on their delivery. The issue stays
   "sending" with nothing left to send: "sent" waits for the decision.
3. Once the wait is over and the share's deliveries are settled, the scheduler decides
   (`decide_if_due`): the subject whose deliveries were clicked or voted on by the most people,
   per delivery sent (human clicks and votes only: opens are never counted, since Apple Mail
   opens everything). A tie, or no click or vote at all, goes to the earlier subject. An editor
   may pick the winner by hand at any time during the test (`decide` with a winner).
4. The decision and the deliveries of everyone else (carrying the winner) are written in one
   transaction, once (a compare-and-set on the test's row): a crash before it leaves the test
   undecided and the next round decides; a second scheduler finds it decided and does nothing;
   nobody the test mailed is in the rest (the ledger's unique (issue, subscriber)).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from newsletter.audience import service as audience
from newsletter.audience import split
from newsletter.issues import service as issues
from newsletter.issues import subjects
from newsletter.issues.models import IN_SEND, IssueStatus, SubjectTest
from newsletter.issues.subjects import SubjectTestError
from newsletter.orm import utcnow
from newsletter.sending import service as sending
from newsletter.tracking import service as tracking

__all__ = ["SubjectTestError"]

DEFAULT_SHARE = 20
DEFAULT_WAIT_MINUTES = 4 * 60
RULE = "people who clicked or voted (as a person, not a scanner) per delivery sent"

_WAIT = re.compile(r"(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?", re.ASCII)


def parse_wait(raw: str) -> int:
    """ "4h", "90m", "1d", "1h30m" -> minutes; refused otherwise, a bare number too (4 what?)."""
    text = raw.strip().lower().replace(" ", "")
    if text.isascii() and text.isdigit():
        raise SubjectTestError(
            f"the wait {raw[:40]!r} has no unit: write {text[:12]}m for minutes or "
            f"{text[:12]}h for hours"
        )
    match = _WAIT.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise SubjectTestError(
            f"the wait {raw[:40]!r} is not a duration: write it like 4h, 90m, 1d or 1h30m"
        )
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return days * 24 * 60 + hours * 60 + minutes


def wait_text(minutes: int) -> str:
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins else ""]
    return "".join(parts) or "0m"


def set_test(
    session: Session,
    issue_id: int,
    given: Sequence[str],
    *,
    share: int = DEFAULT_SHARE,
    wait_minutes: int = DEFAULT_WAIT_MINUTES,
    by: str = "",
    skip_blank: bool = False,
) -> bool:
    """Give the issue a subject test; True if an approval was withdrawn. `skip_blank`: blank
    subjects are empty fields of a form, not subjects."""
    return subjects.set_test(
        session,
        issue_id,
        given,
        share=share,
        wait_minutes=wait_minutes,
        by=by,
        skip_blank=skip_blank,
    )


def remove_test(session: Session, issue_id: int) -> bool:
    return subjects.remove_test(session, issue_id)


def get(session: Session, issue_id: int) -> SubjectTest | None:
    return subjects.get(session, issue_id)


@dataclass(frozen=True)
class Figures:
    """One subject's figures in its test: deliveries sent, and people who opened, clicked,
    voted, and clicked or voted."""

    number: int
    subject: str
    deliveries: int
    sent: int
    opened: int
    clicked: int
    voted: int
    engaged: int

    @property
    def rate(self) -> float:
        return self.engaged / self.sent if self.sent else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "subject": self.subject,
            "deliveries": self.deliveries,
            "sent": self.sent,
            "opened": self.opened,
            "clicked": self.clicked,
            "voted": self.voted,
            "engaged": self.engaged,
            "rate": round(self.rate, 6),
        }


def figures(
    session: Session, issue_id: int, test: SubjectTest, *, test_only: bool = True
) -> list[Figures]:
    """Each subject's figures: of the test's share (`test_only`, what decides), or of every
    delivery that carried it (the winner's include the rest)."""
    share, whole = both_figures(session, issue_id, test)
    return share if test_only else whole


def both_figures(
    session: Session, issue_id: int, test: SubjectTest
) -> tuple[list[Figures], list[Figures]]:
    """(the test's share's figures, every delivery's) per subject, from one read of the
    deliveries and one of the firsts: until the decision (no split), the share is every
    delivery, and the reads give the two alike."""
    counts = sending.subject_counts(session, issue_id, split_at=test.decided_at)
    readers = tracking.readers_by_subject(session, issue_id, split_at=test.decided_at)
    share = _figures(test, counts[1], readers[1])
    return share, _figures(test, counts[0], readers[0])


def _figures(
    test: SubjectTest, counts: dict[int, dict[str, int]], readers: dict[int, dict[str, int]]
) -> list[Figures]:
    found = []
    for number, subject in enumerate(test.subjects, start=1):
        states = counts.get(number, {})
        read = readers.get(number, {})
        found.append(
            Figures(
                number=number,
                subject=subject,
                deliveries=sum(states.values()),
                sent=states.get("sent", 0),
                opened=read.get("opened", 0),
                clicked=read.get("clicked", 0),
                voted=read.get("voted", 0),
                engaged=read.get("engaged", 0),
            )
        )
    return found


def best(found: Sequence[Figures]) -> Figures:
    """The highest rate; a tie goes to the earlier subject."""
    return max(found, key=lambda f: (f.rate, -f.number))


@dataclass(frozen=True)
class Decision:
    issue_id: int
    winner: int
    subject: str
    by: str
    rest: int  # deliveries made for everyone else


def decide(
    session: Session,
    issue_id: int,
    *,
    winner: int | None = None,
    by: str,
    now: datetime | None = None,
) -> Decision | None:
    """Choose the winner (`winner`, an editor's pick; None, by the figures) and queue it for
    everyone else, in the caller's transaction. None when the test was decided already (by
    another worker or an editor); refused when there is no test under way to decide."""
    now = now or utcnow()
    issue = issues.require(session, issue_id, lock=True)
    test = subjects.get(session, issue_id, lock=True)
    if test is None:
        raise SubjectTestError(f"issue {issue_id} has no subject test")
    if test.decided_at is not None:
        return None
    if test.started_at is None or issue.status not in IN_SEND:
        raise SubjectTestError(
            f"issue {issue_id} is {issue.status.value}: its subject test has not started "
            "(it starts with the send)"
            if test.started_at is None
            else f"issue {issue_id} is {issue.status.value}: too late to choose its subject"
        )
    found = figures(session, issue_id, test)
    if winner is None:
        chosen = best(found)
        why = (
            f"the highest rate of {RULE}"
            if any(f.engaged for f in found)
            else "no click or vote yet by anyone in the test: the first subject"
        )
    else:
        if isinstance(winner, bool) or not 1 <= winner <= len(test.subjects):
            raise SubjectTestError(
                f"issue {issue_id}'s test has subjects 1 to {len(test.subjects)}, not {winner}"
            )
        chosen = found[winner - 1]
        why = "chosen by hand"
    record = {
        "rule": RULE,
        "why": why,
        "subjects": [f.to_json() for f in found],
        "winner": chosen.number,
    }
    if not subjects.record_decision(
        session, issue_id, winner=chosen.number, by=by, figures=record, now=now
    ):
        return None
    rest = sending.send_rest(
        session,
        issue_id,
        subject=split.winner_sql(chosen.number),
        within=audience.rest_within(session, issue_id),
        now=now,
    )
    recorded = dict(issues.require(session, issue_id).audience or {})
    recorded["subject_test"] = {"share": test.share, "rest": rest, "winner": chosen.number}
    recorded["recipients"] = sending.status_counts(session, issue_id)["recipients"]
    issues.record_audience(session, issue_id, recorded)
    return Decision(issue_id, chosen.number, chosen.subject, by, rest)


def due(test: SubjectTest, now: datetime) -> bool:
    return test.started_at is not None and now >= test.started_at + timedelta(
        minutes=test.wait_minutes
    )


def due_issue_ids(session: Session, now: datetime) -> list[int]:
    """Issues whose test's wait is over (the scheduler then decides each in its own
    transaction, `decide_if_due`)."""
    return [t.issue_id for t in subjects.waiting(session) if due(t, now)]


def decide_if_due(session: Session, issue_id: int, now: datetime | None = None) -> Decision | None:
    """The scheduler's decision: by the figures, once the wait is over and the share is settled
    (none of its deliveries still queued or in flight: their figures are not in yet). None if
    not yet, or decided already."""
    now = now or utcnow()
    issue = issues.require(session, issue_id, lock=True)
    test = subjects.get(session, issue_id)
    if test is None or test.decided_at is not None or not due(test, now):
        return None
    if issue.status is not IssueStatus.SENDING:
        return None  # paused or cancelled: an editor's hand is on it
    if sending.any_delivery_open(session, issue_id):
        return None  # the share is still being sent: asked again each tick until it is not
    return decide(session, issue_id, by="the figures", now=now)


def report(session: Session, issue_id: int) -> dict[str, Any] | None:
    """The test as the editor reads it: its setting, its phase, each subject's figures (of the
    share; with the winner's send to the rest once decided) and the decision with its figures."""
    test = subjects.get(session, issue_id)
    if test is None:
        return None
    if test.started_at is None:
        phase = "set"
    elif test.decided_at is None:
        phase = "testing"
    else:
        phase = "decided"
    issue = issues.require(session, issue_id)
    decide_at = (
        test.started_at + timedelta(minutes=test.wait_minutes)
        if test.started_at is not None
        else None
    )
    found: list[Figures] = []
    whole: list[Figures] = []
    if test.started_at is not None:
        found, whole = both_figures(session, issue_id, test)
        if test.decided_at is None:
            whole = []  # the share is all there is until the winner goes to the rest
    return {
        **(subjects.to_json(test) or {}),
        "wait": wait_text(test.wait_minutes),
        "phase": phase,
        "decide_at": decide_at.isoformat() if decide_at else None,
        # As the editor reads times elsewhere: in NEWSLETTER_TIMEZONE.
        "decide_at_local": issues.local_time(decide_at) if decide_at else None,
        "decided_at_local": issues.local_time(test.decided_at) if test.decided_at else None,
        "rule": RULE,
        "test": [f.to_json() for f in found],
        # How many the share's hash took (the share is a target: about that percent).
        "in_test": sum(f.deliveries for f in found),
        # Of them, those whose mail went out (the others skipped, failed or not yet sent).
        "sent_in_test": sum(f.sent for f in found),
        "overall": [f.to_json() for f in whole],
        "decision": test.decision,
        "issue_status": issue.status.value,
        "can_pick": phase == "testing" and issue.status in IN_SEND,
        "editable": issue.status in issues.EDITABLE,
    }


def share_sent(found: dict[str, Any]) -> str:
    """Who of the share got their subject, as words: "30 people were sent their subjects",
    or "1 person in the share, 0 of them sent their subject" when some were not (skipped,
    failed, or not sent yet)."""
    people, sent = found["in_test"], found.get("sent_in_test", found["in_test"])
    if sent == people:
        return f"{people:,} {'person was' if people == 1 else 'people were'} sent their subjects"
    return (
        f"{people:,} {'person' if people == 1 else 'people'} in the share, {sent:,} of them sent "
        "their subject (the others skipped, failed or not sent yet)"
    )


def text_report(found: dict[str, Any]) -> list[str]:
    """The report as lines, for the CLI."""
    count = len(found["subjects"])
    if found["phase"] == "set":
        head = (
            f"subject test set: {count} subjects on {found['share']}% of the audience; the "
            f"winner goes to the rest {found['wait']} after the send starts"
        )
    elif found["phase"] == "testing":
        head = (
            f"subject test running: {share_sent(found)} (the {found['share']}% share of the "
            f"audience, {count} subjects); the winner goes to the rest from "
            f"{found['decide_at_local']}"
        )
    else:
        head = f"subject test decided: {found['share']}% of the audience tried {count} subjects"
    lines = [head]
    rows = {f["number"]: f for f in found["test"]}
    for number, subject in enumerate(found["subjects"], start=1):
        row = rows.get(number)
        mark = "*" if found["winner"] == number else " "
        figures_text = (
            f"  sent {row['sent']:,}, opened {row['opened']:,}, clicked {row['clicked']:,}, "
            f"voted {row['voted']:,}, clicked or voted {row['engaged']:,} "
            f"({row['rate']:.1%})"
            if row
            else ""
        )
        lines.append(f" {mark}{number}. {subject}{figures_text}")
    if found["decision"]:
        lines.append(
            f"winner: subject {found['winner']} ({found['decision']['why']}), decided by "
            f"{found['decided_by']} at {found['decided_at_local']}"
        )
    return lines
