"""After erasure no table holds the address, in any case or form, but the suppression hash."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import String, Text, cast, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON

from newsletter.db import transaction
from newsletter.orm import Base
from newsletter.people import erasure
from newsletter.sending.models import Delivery, SendBatch
from newsletter.tracking.ingest import ingest_sendgrid
from subscribers import search as search_index
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, Suppression
from tests.subscribers.factories import delivery_for
from tests.subscribers.helpers import cli, client, confirmation_link, outbox, path_of

EMAIL = "zq.person+news@example.com"
SHOUTED = "ZQ.Person+News@Example.COM"


def _traces(db: Session) -> list[str]:
    """Every (table.column) whose text holds the address or a form of it, scanning every text
    and JSON column of every table, so a column added later is covered too."""
    forms = {EMAIL, quote(EMAIL, safe=""), "zq.person", address_hash(EMAIL)}
    found = []
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if not isinstance(column.type, String | Text | JSON):
                continue
            text = cast(column, Text) if isinstance(column.type, JSON) else column
            for form in forms:
                hits = db.scalar(
                    select(func.count())
                    .select_from(table)
                    .where(func.lower(text).contains(form.lower()))
                )
                if hits:
                    found.append(f"{table.name}.{column.name} ({form})")
    return found


def _event(event_id: str, **fields: object) -> dict[str, object]:
    return {"sg_event_id": event_id, "timestamp": 1767000000, "email": SHOUTED, **fields}


def test_erasure_leaves_no_copy_of_the_address_anywhere(db: Session) -> None:
    web = client()
    web.post("/subscribe", data={"email": SHOUTED, "name": "Zq Person"})
    web.post(path_of(confirmation_link(outbox()[-1])))
    subscriber_id = db.scalar(select(Subscriber.id).where(Subscriber.email == EMAIL))
    assert subscriber_id is not None
    delivery = delivery_for(db, subscriber_id)
    batch = SendBatch(issue_id=delivery.issue_id, error=f"SendGrid 400: invalid <{SHOUTED}>")
    db.add(batch)
    db.flush()
    delivery.batch_id, delivery.error = batch.id, f"421 deferred for {SHOUTED}"
    db.commit()
    delivery_id = delivery.id
    with transaction() as session:
        ingest_sendgrid(
            session,
            [
                # The confirmation mail's events match no delivery.
                _event("c1", event="delivered"),
                _event("d1", event="delivered", delivery_id=str(delivery_id)),
                _event(
                    "b1",
                    event="bounce",
                    type="bounce",
                    delivery_id=str(delivery_id),
                    # The mailbox name alone, as some servers write it, names the person too.
                    reason=f"550 5.1.1 <{SHOUTED}>: user unknown; mailbox ZQ.Person+news busy",
                ),
                _event(
                    "k1",
                    event="click",
                    delivery_id=str(delivery_id),
                    url=f"https://x.example/?e={quote(EMAIL, safe='')}",
                    useragent="UA",
                ),
            ],
        )
    assert _traces(db) != []  # the arrangement really stored copies

    assert cli("subscribers", "erase", EMAIL, "--yes").exit_code == 0
    # Events that arrive after the erasure, about the issue and about the confirmation mail.
    with transaction() as session:
        ingest_sendgrid(
            session,
            [
                _event("d2", event="open", delivery_id=str(delivery_id), useragent="UA"),
                _event("c2", event="open", useragent="UA"),
            ],
        )
    db.expire_all()
    assert _traces(db) == ["suppressions.email_hash (" + address_hash(EMAIL) + ")"]
    # The bounce stays the reason (the address stays unmailable); the erasure is beside it.
    suppression = db.scalars(select(Suppression)).one()
    assert suppression.reason == "bounced" and suppression.erased_at is not None
    assert db.scalar(select(func.count()).select_from(Delivery)) == 1  # still counted


def _raw_index_holds(db: Session, fragment: str) -> bool:
    """True if SQLite's FTS5 segments still hold `fragment` as stored bytes (a trigram that no
    other row shares is stored whole, so this reads what a file recovery tool would)."""
    blocks = db.scalars(text(f"SELECT block FROM {search_index.FTS_TABLE}_data"))
    return any(fragment.encode() in bytes(block) for block in blocks if block)


def test_erasure_leaves_nothing_in_the_search_index(db: Session) -> None:
    """FTS5 deletes with a tombstone and keeps the old trigrams until its segments merge;
    erasure merges them, so the raw index no longer holds the person's name or address."""
    if db.get_bind().dialect.name != "sqlite":
        assert db.scalar(text("SELECT to_regclass(:t)"), {"t": search_index.FTS_TABLE}) is None
        return  # PostgreSQL's trigram index is part of the table's own index, not a table
    # Rows in separate commits, so the person's entry sits in a segment of its own.
    for n in range(3):
        cli("subscribers", "add", f"reader{n}@example.net", "--name", f"Reader {n}")
    cli("subscribers", "add", EMAIL, "--name", "Zq Ǯavier")
    cli("subscribers", "add", "reader9@example.net", "--name", "Reader 9")
    # "ǯav" is the only trigram that starts with ǯ's first byte, so no shared prefix hides it.
    assert _raw_index_holds(db, "ǯav")

    assert cli("subscribers", "erase", EMAIL, "--yes").exit_code == 0
    db.expire_all()
    assert not _raw_index_holds(db, "ǯav")
    # The others are still found through the index.
    found = db.scalars(
        text(f"SELECT rowid FROM {search_index.FTS_TABLE} WHERE {search_index.FTS_TABLE} MATCH :q"),
        {"q": '"reader"'},
    ).all()
    assert len(found) == 4


def test_bulk_erasure_compacts_the_index_once(db: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from subscribers import repository, service

    ids = []
    for n in range(3):
        cli("subscribers", "add", f"bulk{n}@example.net")
        ids.append(
            db.scalar(select(Subscriber.id).where(Subscriber.email == f"bulk{n}@example.net"))
        )
    calls: list[int] = []
    real = repository.compact_search_index
    monkeypatch.setattr(repository, "compact_search_index", lambda s: calls.append(1) or real(s))
    with transaction() as session:
        assert erasure.apply_bulk(session, service.BulkAction.ERASE, [i for i in ids if i]) == 3
    assert calls == [1]
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_an_erased_complainer_is_never_mailed_by_a_sign_up(db: Session) -> None:
    """Erasure keeps "complained" as the reason: typing the address into the sign-up form
    afterwards sends nothing, as it would before the erasure."""
    cli("subscribers", "add", EMAIL)
    subscriber_id = db.scalar(select(Subscriber.id).where(Subscriber.email == EMAIL))
    delivery_id = delivery_for(db, subscriber_id).id
    db.commit()
    with transaction() as session:
        ingest_sendgrid(session, [_event("s1", event="spamreport", delivery_id=str(delivery_id))])
    assert cli("subscribers", "erase", EMAIL, "--yes").exit_code == 0
    before = len(outbox())
    response = client().post("/subscribe", data={"email": EMAIL, "name": ""})
    assert response.status_code == 200
    assert len(outbox()) == before
    db.expire_all()
    suppression = db.scalars(select(Suppression)).one()
    assert (suppression.reason, suppression.erased_at is not None) == ("complained", True)
    assert db.scalar(select(func.count()).select_from(Subscriber)) == 0
