"""Edges of the CSV import that mutation testing found no test for: each is a promise a person
relies on (a line right at the limit is read, one bad line costs only itself, a file that says
people left never makes them active, each person of a batch is judged on their own)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from subscribers.csv_reading import MAX_LINE_BYTES
from subscribers.models import Subscriber, SubscriberStatus
from tests.subscribers.factories import active_subscriber
from tests.subscribers.helpers import cli


def _import(path: Path, *args: str) -> dict[str, object]:
    """The JSON report (the exit status is 1 when a row was refused: the contract's rule)."""
    result = cli("subscribers", "import", str(path), "--json", *args)
    report: dict[str, object] = json.loads(result.stdout)
    assert result.exit_code == (1 if report["invalid"] else 0), result.output
    return report


def _statuses(db: Session) -> dict[str, SubscriberStatus]:
    db.expire_all()
    return {s.email: s.status for s in db.scalars(select(Subscriber))}


def test_a_line_of_exactly_the_limit_ending_in_a_newline_is_read(
    db: Session, tmp_path: Path
) -> None:
    head = b"email,name\n"
    prefix = b"long.name@example.org,"
    name = b"N" * (MAX_LINE_BYTES - len(prefix) - 1)
    line = prefix + name + b"\n"
    assert len(line) == MAX_LINE_BYTES
    path = tmp_path / "limit.csv"
    path.write_bytes(head + line + b"next@example.org,Next\n")
    report = _import(path)
    # The name is over the name limit (refused by that rule, named), not "line too long".
    reasons = [row["reason"] for row in report["invalid"]]  # type: ignore[index, union-attr]
    assert reasons and all("longer than" not in r or "name" in r for r in reasons), reasons
    assert "next@example.org" in _statuses(db)


def test_one_overlong_line_costs_only_itself(db: Session, tmp_path: Path) -> None:
    path = tmp_path / "overlong.csv"
    path.write_bytes(
        b"email,name\n"
        + b"first@example.org,First\n"
        + b"x@example.org,"
        + b"y" * (MAX_LINE_BYTES + 10)
        + b"\n"
        + b"right.after@example.org,Right After\n"
    )
    report = _import(path)
    [bad] = report["invalid"]  # type: ignore[misc]
    assert bad["line"] == 3 and "longer than" in bad["reason"]
    assert set(_statuses(db)) == {"first@example.org", "right.after@example.org"}


def test_an_overlong_header_is_refused_not_skipped(tmp_path: Path, db: Session) -> None:
    path = tmp_path / "long-header.csv"
    path.write_bytes(b"email," + b"h" * (MAX_LINE_BYTES + 5) + b"\nann@example.org,Ann\n")
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert "line 1: the header cannot be read: line longer than" in result.stderr
    assert _statuses(db) == {}


def test_an_unreadable_header_is_refused_with_its_line_and_why(tmp_path: Path, db: Session) -> None:
    path = tmp_path / "bad-header.csv"
    # 0x81 is neither UTF-8 here nor a Windows-1252 character.
    path.write_bytes(b"email,n\x81me\nann@example.org,Ann\n")
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert "line 1: the header cannot be read: neither UTF-8 nor Windows-1252" in result.stderr
    assert _statuses(db) == {}


def test_each_person_already_here_is_judged_on_their_own_in_a_batch(
    db: Session, tmp_path: Path
) -> None:
    """One who had left already, then one still active, in the same batch of an unsubscribed
    export: the first stays as they are, the second is marked as having left too."""
    gone = active_subscriber(db, "aaa.gone@example.org")
    stays = active_subscriber(db, "zzz.stays@example.org")
    db.execute(
        update(Subscriber).where(Subscriber.id == gone).values(status=SubscriberStatus.UNSUBSCRIBED)
    )
    # They subscribed here before the export says they left there: the export's word stands.
    db.execute(
        update(Subscriber)
        .where(Subscriber.id == stays)
        .values(consent_at=datetime(2023, 1, 1, tzinfo=UTC))
    )
    db.commit()
    path = tmp_path / "unsubscribed_members_export_2c.csv"
    path.write_text(
        "Email Address,UNSUB_TIME\n"
        "aaa.gone@example.org,2024-02-01 08:00:00\n"
        "zzz.stays@example.org,2024-02-01 08:00:00\n"
    )
    report = _import(path, "--format", "mailchimp")
    assert report["marked_left"] == 1
    assert _statuses(db) == {
        "aaa.gone@example.org": SubscriberStatus.UNSUBSCRIBED,
        "zzz.stays@example.org": SubscriberStatus.UNSUBSCRIBED,
    }


def test_someone_who_left_without_a_suppression_row_is_not_brought_back(
    db: Session, tmp_path: Path
) -> None:
    """A status of 'unsubscribed' with no suppression entry (a list from before suppressions):
    a subscribed row in a file skips them, reported as suppressed, and they stay out."""
    gone = active_subscriber(db, "old.leaver@example.org")
    db.execute(
        update(Subscriber).where(Subscriber.id == gone).values(status=SubscriberStatus.UNSUBSCRIBED)
    )
    db.commit()
    path = tmp_path / "list.csv"
    path.write_text("email,name\nold.leaver@example.org,Old Leaver\n")
    report = _import(path)
    assert report["skipped_by_reason"]["suppressed"] == 1  # type: ignore[index]
    assert _statuses(db) == {"old.leaver@example.org": SubscriberStatus.UNSUBSCRIBED}


# Newer or re-saved exports that no tool signature matches (found by an independent tester:
# each was read as a plain list and everyone in it imported as active).
NEWER_EXPORTS = {
    "mailchimp-contacts.csv": (
        '"Email Address","First Name","Last Name","Email Marketing","SMS Marketing","Tags"\n'
        '"mc.sub@example.com","A","B","Subscribed","Non-Subscribed",""\n'
        '"mc.unsub@example.com","A","B","Unsubscribed","",""\n'
        '"mc.clean@example.com","A","B","Cleaned","",""\n'
        '"mc.never@example.com","A","B","Non-Subscribed","",""\n'
        '"mc.pending@example.com","A","B","Pending","",""\n',
        {"mc.sub@example.com": "active", "mc.pending@example.com": "pending"},
    ),
    "buttondown-newer.csv": (
        "email_address,creation_date,type,tags\n"
        "bd.reg@example.com,2023-01-01,regular,\n"
        "bd.unsub@example.com,2023-01-01,unsubscribed,\n"
        "bd.gone@example.com,2023-01-01,undeliverable,\n",
        {"bd.reg@example.com": "active"},
    ),
    "mailerlite-classic.csv": (
        # "State" is the address's (empty here), "Type" the status: both are read.
        "Email,Name,Last name,Company,Country,City,Phone,State,Zip,Subscribed,Type\n"
        "ml.a@example.com,A,B,,,,,,,2023-01-01,active\n"
        "ml.u@example.com,A,B,,,,,,,2023-01-01,unsubscribed\n"
        "ml.b@example.com,A,B,,,,,,,2023-01-01,bounced\n",
        {"ml.a@example.com": "active"},
    ),
    "substack-newer.csv": (
        "Email,Name,Subscription type,Subscription date,Activity,Email disabled\n"
        "ss.a@example.com,A,Free,2023-01-01,5,No\n"
        "ss.b@example.com,B,Free,2023-01-01,0,Yes\n",
        {"ss.a@example.com": "active"},
    ),
}


@pytest.mark.parametrize("name", sorted(NEWER_EXPORTS))
def test_a_newer_export_of_a_known_tool_keeps_out_who_left(
    db: Session, tmp_path: Path, name: str
) -> None:
    content, mailable = NEWER_EXPORTS[name]
    path = tmp_path / name
    path.write_text(content)
    _import(path)
    people = _statuses(db)
    on_list = {e: s.value for e, s in people.items() if s.value in ("active", "pending")}
    assert on_list == mailable, people


def test_an_unknown_word_in_a_type_column_refuses_the_row_and_unmapping_it_imports(
    db: Session, tmp_path: Path
) -> None:
    """A "type" column of another meaning: nobody is imported on a guess; the admin who knows
    better unmaps it."""
    path = tmp_path / "crm.csv"
    path.write_text("email,type\nann@example.org,customer\n")
    report = _import(path)
    [bad] = report["invalid"]  # type: ignore[misc]
    assert "unknown status 'customer' in column 'type'" in bad["reason"]
    assert _statuses(db) == {}
    again = _import(path, "--map", "status=")
    assert again["imported"] == 1
    assert _statuses(db) == {"ann@example.org": SubscriberStatus.ACTIVE}
