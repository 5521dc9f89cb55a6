"""The bulk import's shortcuts store exactly what the plain way would: the faster address hash,
and the SQLite insert that binds a value many rows share once per statement."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from newsletter.settings import reset_settings
from subscribers import bulk, importer
from subscribers import search as search_index
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberTag, Suppression
from subscribers.service import ConfirmationRequest
from tests.subscribers.factories import active_subscriber

# Later than the arranged rows' consent, so that a leaving without a time (now) stands.
NOW = datetime(2031, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


@pytest.mark.parametrize("suppression_key", [None, "another key", "k" * 200])
def test_the_import_hashes_addresses_as_address_hash_does(
    monkeypatch: pytest.MonkeyPatch, suppression_key: str | None
) -> None:
    if suppression_key:
        monkeypatch.setenv("NEWSLETTER_SUPPRESSION_KEY", suppression_key)
    reset_settings()
    fast = importer._hasher()
    assert fast is not address_hash  # the fast one was taken: this test checks something
    for email in ("a@b.co", "reader1@example.com", "ü@exämple.org", "x" * 300, "", "'=x@e.com"):
        assert fast(email) == address_hash(email)


def _file(tmp_path: Path) -> Path:
    """Our own export's columns: plain active rows (most), dated consent with an IP, paused and
    tags, never-confirmed rows (the same values, distinct tuples), and people who left."""
    lines = ["email,name,status,consent_at,consent_ip,unsubscribed_at,paused,topics"]
    for i in range(400):
        kind = i % 8
        if kind <= 3:
            lines.append(f"plain{i}@example.com,Plain {i},active,,,,,")
        elif kind == 4:
            lines.append(
                f"dated{i}@example.com,Dated {i},active,2024-01-{i % 28 + 1:02d}T10:00:00Z,"
                f"192.0.2.{i % 250},,{'true' if i % 3 else 'false'},news;offers"
            )
        elif kind in (5, 6):
            lines.append(f"pending{i}@example.com,,pending,,,,,")
        else:
            lines.append(
                f"left{i}@example.com,Left {i},unsubscribed,2023-05-01T00:00:00Z,,"
                f"2025-02-{i % 28 + 1:02d}T08:00:00Z,,"
            )
    lines += ["plain0@example.com,Again,active,,,,,", "known1@example.com,Known New,active,,,,,"]
    lines += ["known2@example.com,,unsubscribed,,,,,", "known3@example.com,Known 3,active,,,,,"]
    path = tmp_path / "export.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _arrange(db: Session) -> None:
    for n in (1, 2, 3):
        active_subscriber(db, f"known{n}@example.com", f"Known {n}")
    db.commit()


def _stored(db: Session) -> dict[str, Any]:
    db.expire_all()
    columns = [c for c in Subscriber.__table__.c if c.name not in ("id", "public_id")]
    people = {
        row.email: tuple(getattr(row, c.name) for c in columns)
        for row in db.scalars(select(Subscriber))
        if not row.email.startswith("known")  # arranged at the time of each run
    }
    known = {
        row.email: (row.name, row.status.value)
        for row in db.scalars(select(Subscriber).where(Subscriber.email.like("known%")))
    }
    ids = {s.id: s.email for s in db.scalars(select(Subscriber))}
    tags = sorted((ids[t.subscriber_id], t.name) for t in db.scalars(select(SubscriberTag)))
    suppressed = sorted((s.email_hash, s.reason, s.detail) for s in db.scalars(select(Suppression)))
    public_ids = [s.public_id for s in db.scalars(select(Subscriber))]
    assert len(set(public_ids)) == len(public_ids) and all(len(p) == 22 for p in public_ids)
    return {"people": people, "known": known, "tags": tags, "suppressed": suppressed}


def _mail(mailed: list[tuple[str, str]], request: ConfirmationRequest) -> None:
    mailed.append((request.email, request.name))


@pytest.mark.parametrize("require_confirmation", [False, True])
def test_rows_are_stored_the_same_however_the_insert_groups_them(
    db: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, require_confirmation: bool
) -> None:
    monkeypatch.setattr(importer, "utcnow", lambda: NOW)
    path = _file(tmp_path)
    results = []
    for shared_run in (bulk._SHARED_RUN, 10**9):  # grouped as usual; every row alone
        monkeypatch.setattr(bulk, "_SHARED_RUN", shared_run)
        db.execute(delete(Subscriber))
        db.execute(delete(Suppression))
        db.commit()
        _arrange(db)
        mailed: list[tuple[str, str]] = []
        run = importer.import_csv(
            path,
            fmt="newsletter",
            require_confirmation=require_confirmation,
            send_confirmation=partial(_mail, mailed),
        )
        results.append((run.to_json(), _stored(db), sorted(mailed)))
    assert results[0] == results[1]
    report, stored, mailed = results[0]
    assert report["imported"] == 350 and report["kept_out"] == 51  # known2 left as well
    assert report["updated"] == 1 and report["skipped"] == 2  # the second plain0; known3
    assert len(mailed) == (250 if require_confirmation else 0)
    people = stored["people"]
    columns = [c.name for c in Subscriber.__table__.c if c.name not in ("id", "public_id")]

    def of(email: str) -> dict[str, Any]:
        return dict(zip(columns, people[email], strict=True))

    plain, dated, pending = (
        of("plain8@example.com"),
        of("dated4@example.com"),
        of("pending5@example.com"),
    )
    if require_confirmation:
        assert (plain["status"], plain["consent_at"], plain["confirm_sent_at"]) == (
            "pending",
            None,
            NOW,
        )
    else:
        assert (plain["status"], plain["consent_at"], plain["confirmed_at"]) == ("active", NOW, NOW)
        assert plain["consent_method"] == "import" and plain["confirm_sent_at"] is None
        assert dated["consent_at"] == datetime(2024, 1, 5, 10, tzinfo=UTC)
        assert (dated["consent_ip"], dated["paused"]) == ("192.0.2.4", True)
    assert (plain["name"], plain["source"], plain["created_at"]) == (
        "Plain 8",
        "import:newsletter:export.csv",
        NOW,
    )
    assert (pending["status"], pending["confirm_sent_at"], pending["paused"]) == (
        "pending",
        None,
        False,
    )
    left = of("left7@example.com")
    assert (left["status"], left["unsubscribed_at"]) == (
        "unsubscribed",
        datetime(2025, 2, 8, 8, tzinfo=UTC),
    )
    assert stored["known"] == {
        "known1@example.com": ("Known New", "active"),
        "known2@example.com": ("Known 2", "unsubscribed"),
        "known3@example.com": ("Known 3", "active"),
    }
    assert ("dated4@example.com", "news") in stored["tags"]
    assert len(stored["suppressed"]) == 51


def _search_state(db: Session) -> tuple[Any, ...]:
    if db.get_bind().dialect.name != "sqlite":
        return ()
    fts = search_index.FTS_TABLE
    return (
        db.scalar(text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": INSERT_TRIGGER}),
        db.scalar(text(f"SELECT v FROM {fts}_config WHERE k = 'hashsize'")),
        db.scalar(text(f"SELECT count(*) FROM {fts}_data")),
    )


INSERT_TRIGGER = search_index.INSERT_TRIGGER_NAME


def test_an_import_leaves_the_search_index_settings_as_they_were(
    db: Session, tmp_path: Path
) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,name\n" + "".join(f"r{n}@example.org,Quill {n}\n" for n in range(300)))
    before = _search_state(db)
    assert importer.import_csv(path, dry_run=True).imported == 300
    assert _search_state(db) == before  # a dry run leaves no trace, the trigger included
    assert importer.import_csv(path).imported == 300
    after = _search_state(db)
    if before:
        # The buffer is FTS5's default again (written out now), the trigger exactly as made.
        assert after[0] == before[0] and before[1] is None
        assert int(after[1]) == search_index.DEFAULT_HASHSIZE
        fts = search_index.FTS_TABLE
        found = db.scalar(text(f"SELECT count(*) FROM {fts} WHERE {fts} MATCH '\"quill 12\"'"))
        assert found == 11  # Quill 12, 120…129
        db.execute(text(f"INSERT INTO {fts}({fts}, rank) VALUES ('integrity-check', 1)"))


@pytest.mark.parametrize("stage", ["writing", "indexing"])
def test_an_import_that_fails_midway_leaves_rows_and_search_index_as_before(
    db: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    """An error (or a crash) inside a commit's work rolls all of it back: its rows, the
    trigger the fill set aside and the buffer size it set."""
    _arrange(db)
    monkeypatch.setattr(importer, "BATCH_ROWS", 10)
    path = tmp_path / "list.csv"
    path.write_text("email,name\n" + "".join(f"n{n}@example.org,N {n}\n" for n in range(100)))
    people_before, search_before = _stored(db), _search_state(db)
    if stage == "writing":
        real = bulk.insert_new
        calls: list[int] = []

        def failing(*args: Any) -> Any:
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("disk on fire")
            return real(*args)

        monkeypatch.setattr(bulk, "insert_new", failing)
    elif db.get_bind().dialect.name == "sqlite":
        monkeypatch.setattr(search_index, "INSERT_TRIGGER", "CREATE TRIGGER broken")
    else:
        pytest.skip("PostgreSQL's trigram indexes follow the table: there is no fill to fail")
    with pytest.raises(Exception, match=r"disk on fire|syntax error|incomplete input"):
        importer.import_csv(path)
    db.rollback()
    assert _stored(db) == people_before
    assert _search_state(db) == search_before
    if search_before:  # the trigger still indexes people added one at a time
        monkeypatch.undo()
        active_subscriber(db, "later@example.org", "Zebulon Later")
        db.commit()
        fts = search_index.FTS_TABLE
        assert db.scalar(text(f"SELECT count(*) FROM {fts} WHERE {fts} MATCH 'zebulon'")) == 1


def test_an_import_keeps_a_search_buffer_size_set_by_hand(db: Session, tmp_path: Path) -> None:
    if db.get_bind().dialect.name != "sqlite":
        return  # no FTS5 on PostgreSQL
    fts = search_index.FTS_TABLE
    db.execute(text(f"INSERT INTO {fts}({fts}, rank) VALUES ('hashsize', 2097152)"))
    db.commit()
    path = tmp_path / "list.csv"
    path.write_text("email,name\n" + "".join(f"h{n}@example.org,\n" for n in range(20)))
    assert importer.import_csv(path).imported == 20
    assert int(_search_state(db)[1]) == 2097152
