"""After erasure no table holds the address, in any case or form, but the suppression hash."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy import String, Text, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.types import JSON

from newsletter.db import transaction
from newsletter.orm import Base
from newsletter.sending.models import Delivery, SendBatch
from newsletter.tracking import service as tracking
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
        tracking.ingest_sendgrid(
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
                    reason=f"550 5.1.1 <{SHOUTED}>: user unknown",
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
        tracking.ingest_sendgrid(
            session,
            [
                _event("d2", event="open", delivery_id=str(delivery_id), useragent="UA"),
                _event("c2", event="open", useragent="UA"),
            ],
        )
    db.expire_all()
    assert _traces(db) == ["suppressions.email_hash (" + address_hash(EMAIL) + ")"]
    assert db.scalar(select(Suppression.reason)) == "erased"
    assert db.scalar(select(func.count()).select_from(Delivery)) == 1  # still counted
