"""What each kind of row becomes, column by column: the consent record, the times, the flags,
and the report line that says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers import importer, service
from subscribers.models import Subscriber, SubscriberStatus
from tests.subscribers.factories import active_subscriber


def _run(tmp_path: Path, text: str, **options: object) -> importer.ImportReport:
    path = tmp_path / "rows.csv"
    path.write_text(text, encoding="utf-8")
    return importer.import_csv(path, **options)  # type: ignore[arg-type]


def _person(db: Session, email: str) -> Subscriber:
    db.expire_all()
    found = service.find(db, email)
    assert found is not None, email
    return found


def _lines(report: importer.ImportReport, outcome: str, reason: str) -> list[int]:
    return report.outcomes[(outcome, reason)].lines


def test_each_state_gets_its_own_consent_record(db: Session, tmp_path: Path) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    report = _run(
        tmp_path,
        "email,status,paused,consent_at,consent_ip,unsubscribed_at,consent_method,source\n"
        "plain@example.com,active,no,,,,import,web\n"
        "paused@example.com,active,yes,,,,import,web\n"
        "ip@example.com,active,no,,198.51.100.7,,import,web\n"
        "dated@example.com,active,no,2022-02-02T02:02:02+00:00,not-an-ip,,import,web\n"
        "pending@example.com,pending,no,,,,,web\n"
        "left@example.com,unsubscribed,no,2021-01-01T00:00:00+00:00,,2023-03-03T03:03:03+00:00,import,web\n"
        "leftnow@example.com,unsubscribed,no,,,,import,web\n"
        "bounced@example.com,bounced,no,,,,import,web\n",
    )
    assert report.mapping["format"] == "newsletter"
    plain = _person(db, "plain@example.com")
    assert plain.status == SubscriberStatus.ACTIVE and plain.paused is False
    assert plain.consent_method == "import" and plain.consent_ip is None
    assert plain.consent_at is not None and plain.consent_at >= before
    assert plain.confirmed_at == plain.consent_at and plain.confirm_sent_at is None
    assert plain.unsubscribed_at is None and plain.source == "import:newsletter:rows.csv"
    assert _person(db, "paused@example.com").paused is True
    assert _person(db, "ip@example.com").consent_ip == "198.51.100.7"
    dated = _person(db, "dated@example.com")
    assert dated.consent_at == dated.confirmed_at == datetime(2022, 2, 2, 2, 2, 2, tzinfo=UTC)
    assert dated.consent_ip is None
    pending = _person(db, "pending@example.com")
    assert (pending.status, pending.consent_method, pending.consent_at) == (
        SubscriberStatus.PENDING,
        "",
        None,
    )
    assert pending.confirmed_at is None and pending.confirm_sent_at is None
    left = _person(db, "left@example.com")
    assert left.status == SubscriberStatus.UNSUBSCRIBED and left.consent_method == "import"
    assert left.unsubscribed_at == datetime(2023, 3, 3, 3, 3, 3, tzinfo=UTC)
    assert left.consent_at == datetime(2021, 1, 1, tzinfo=UTC) and left.confirmed_at is None
    leftnow = _person(db, "leftnow@example.com")
    assert leftnow.unsubscribed_at is not None and leftnow.unsubscribed_at >= before
    bounced = _person(db, "bounced@example.com")
    assert bounced.status == SubscriberStatus.BOUNCED and bounced.unsubscribed_at is None
    assert (report.imported, report.pending, report.kept_out) == (5, 1, 3)
    assert _lines(report, "imported", "active") == [2, 3, 4, 5]
    assert _lines(report, "imported", "pending: never confirmed, sent nothing") == [6]
    assert _lines(report, "kept_out", 'unsubscribed: status "unsubscribed"') == [7, 8]
    assert _lines(report, "kept_out", 'bounced: status "bounced"') == [9]


def test_asking_to_confirm_makes_new_people_pending_and_says_so(
    db: Session, tmp_path: Path
) -> None:
    sent: list[str] = []
    report = _run(
        tmp_path,
        "email,status\na@example.com,active\nb@example.com,unconfirmed\nc@example.com,active\n",
        require_confirmation=True,
        send_confirmation=lambda request: sent.append(request.email),
    )
    assert sorted(sent) == ["a@example.com", "c@example.com"]  # never the unconfirmed one
    assert (report.imported, report.pending, report.confirmations_sent) == (3, 3, 2)
    assert _lines(report, "imported", "pending: confirmation mailed") == [2, 4]
    assert _lines(report, "imported", "pending: never confirmed, sent nothing") == [3]
    a = _person(db, "a@example.com")
    assert a.status == SubscriberStatus.PENDING and a.confirm_sent_at is not None
    assert a.consent_method == "" and a.consent_at is None
    assert _person(db, "b@example.com").confirm_sent_at is None


def test_never_subscribed_people_are_not_written(db: Session, tmp_path: Path) -> None:
    report = _run(tmp_path, "email,status\nt@example.com,transactional\nok@example.com,active\n")
    assert report.kept_out_by_reason == {'never: status "transactional"': 1}
    assert _lines(report, "kept_out", 'never: status "transactional"') == [2]
    assert set(db.scalars(select(Subscriber.email))) == {"ok@example.com"}


def test_people_who_left_in_both_places_are_kept_out_each_with_their_line(
    db: Session, tmp_path: Path
) -> None:
    for email in ("x@example.com", "y@example.com"):
        service.unsubscribe(db, active_subscriber(db, email))
    active_subscriber(db, "twice@example.com")
    db.commit()
    report = _run(
        tmp_path,
        "email,status\nx@example.com,cancelled\ny@example.com,bounced\n"
        "twice@example.com,active\nTWICE@example.com,active\n",
    )
    # Already suppressed here: counted as the file says, nothing changes.
    assert _lines(report, "kept_out", 'unsubscribed: status "cancelled"') == [2]
    assert _lines(report, "kept_out", 'bounced: status "bounced"') == [3]
    assert _person(db, "y@example.com").status == SubscriberStatus.UNSUBSCRIBED
    assert _lines(report, "skipped", "unchanged") == [4]
    assert _lines(report, "skipped", "duplicate") == [5]


def test_names_and_values_at_their_limits(db: Session, tmp_path: Path) -> None:
    name = "n" * 200
    path = tmp_path / "limits.csv"
    path.write_bytes(
        b"email,x,name,first name\n"
        + f"limit@example.com,,{name}\n".encode()
        + b"short@example.com\n"  # no name cells at all
        + b",,"
        + b"z" * 400
        + b"\n"  # no address: its value is cut for the report
        + b"good@example.com,,Good\n"
        + b"bad@example.com,,B\x81d\n"  # neither UTF-8 nor Windows-1252
    )
    report = importer.import_csv(path)
    assert _person(db, "limit@example.com").name == name
    assert _person(db, "short@example.com").name == ""
    # The unreadable line right after a good one takes only itself down.
    assert _person(db, "good@example.com").name == "Good"
    missing, unreadable = report.invalid
    assert (missing.line, missing.reason, len(missing.value)) == (4, "missing email address", 320)
    assert (unreadable.line, unreadable.value) == (6, "bad@example.com")
    assert unreadable.reason.startswith("neither UTF-8 nor Windows-1252")


@pytest.mark.parametrize("batch_rows", [1, 5000])
def test_a_record_that_cannot_be_read_is_reported_with_an_empty_value(
    db: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    monkeypatch.setattr(importer, "BATCH_ROWS", batch_rows)
    report = _run(tmp_path, 'email,name\na@example.com,"' + "x" * 140_000 + "\nb@example.com,B\n")
    [row] = report.invalid
    assert (row.line, row.value) == (2, "")
    assert row.reason.startswith("unreadable CSV: field larger than field limit")
    assert set(db.scalars(select(Subscriber.email))) == {"b@example.com"}
