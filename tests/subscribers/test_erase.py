"""Erasure leaves no personal data anywhere, keeps the address suppressed, and keeps the
person's past deliveries, events and votes counted, anonymous."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.matchups.models import Matchup
from newsletter.orm import Base
from newsletter.sending.models import Delivery
from newsletter.tracking.models import EventType, TrackingEvent
from newsletter.votes.models import Vote
from subscribers.models import Subscriber, Suppression
from tests.subscribers.factories import active_subscriber, delivery_for
from tests.subscribers.helpers import cli, client

EMAIL = "zoe.erasable@example.com"
NAME = "Zoë Erasable-Person"


def _everything(db: Session) -> str:
    """Every row of every table, as text."""
    db.expire_all()
    dump: list[Any] = []
    for table in Base.metadata.sorted_tables:
        dump.extend(db.execute(select(table)).all())
    return repr(dump).lower()


def _person_with_history(db: Session) -> int:
    subscriber_id = active_subscriber(db, EMAIL, NAME)
    delivery = delivery_for(db, subscriber_id)
    delivery.error = f"first try: 421 for <{EMAIL}>"
    matchup = Matchup(
        pair_key="a-b",
        slug="a-vs-b",
        title="A vs B",
        published_at=delivery.created_at,
        source_name="x",
    )
    db.add(matchup)
    db.flush()
    db.add_all(
        [
            TrackingEvent(
                type=EventType.DELIVERED,
                source="sendgrid",
                provider_event_id="sg-1",
                delivery_id=delivery.id,
                issue_id=delivery.issue_id,
                raw={"email": EMAIL, "event": "delivered"},
                detail=f"250 ok {EMAIL}",
            ),
            TrackingEvent(
                type=EventType.OPENED,
                source="first_party",
                delivery_id=delivery.id,
                issue_id=delivery.issue_id,
                user_agent="Mozilla/5.0 (Zoë's phone)",
            ),
            Vote(
                delivery_id=delivery.id, subscriber_id=subscriber_id, matchup_id=matchup.id, tool=1
            ),
        ]
    )
    db.commit()
    assert EMAIL in _everything(db) and NAME.lower() in _everything(db)
    return subscriber_id


def _assert_erased(db: Session) -> None:
    dump = _everything(db)
    for trace in (EMAIL, NAME.lower(), "zoë", "erasable"):
        assert trace not in dump, f"{trace!r} survived erasure"
    # Still counted, anonymous.
    assert db.scalar(select(func.count()).select_from(Delivery)) == 1
    assert db.scalar(select(Delivery.subscriber_id)) is None
    assert db.scalar(select(func.count()).select_from(TrackingEvent)) == 2
    assert db.scalar(select(func.count()).select_from(Vote)) == 1
    assert db.scalar(select(Vote.subscriber_id)) is None
    assert db.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_cli_erase_removes_every_trace_and_keeps_the_counts(db: Session) -> None:
    _person_with_history(db)
    result = cli("subscribers", "erase", EMAIL.upper(), "--yes")
    assert result.exit_code == 0, result.output
    _assert_erased(db)


def test_erase_asks_first_and_no_means_nothing_erased(db: Session) -> None:
    _person_with_history(db)
    result = cli("subscribers", "erase", EMAIL, input="n\n")
    assert result.exit_code == 1
    assert db.scalar(select(func.count()).select_from(Subscriber)) == 1


def test_erase_from_the_preferences_page(db: Session) -> None:
    subscriber_id = _person_with_history(db)
    delivery_id = db.scalar(select(Delivery.id))
    from newsletter.security.delivery_tokens import delivery_token

    public_id = db.scalar(select(Subscriber.public_id).where(Subscriber.id == subscriber_id))
    token = delivery_token(delivery_id, public_id)  # type: ignore[arg-type]
    web = client()
    page = web.get(f"/p/{token}/erase")
    assert page.status_code == 200 and f'action="/p/{token}/erase"' in page.text
    assert db.get(Subscriber, subscriber_id) is not None  # the GET erased nothing
    assert web.post(f"/p/{token}/erase").status_code == 200
    _assert_erased(db)
    # The link now leads nowhere: the delivery no longer knows whose it was.
    assert web.get(f"/p/{token}").status_code == 404


@pytest.mark.parametrize("how", ["import", "add"])
def test_an_erased_address_stays_suppressed(db: Session, tmp_path: Any, how: str) -> None:
    _person_with_history(db)
    assert cli("subscribers", "erase", EMAIL, "--yes").exit_code == 0
    if how == "import":
        path = tmp_path / "list.csv"
        path.write_text(f"email,name\n{EMAIL.upper()},{NAME}\n", encoding="utf-8")
        result = cli("subscribers", "import", str(path), "--json")
        assert result.exit_code == 0, result.output
        assert '"skipped": 1' in result.stdout and '"imported": 0' in result.stdout
    else:
        result = cli("subscribers", "add", EMAIL)
        assert result.exit_code == 1 and "erased" in result.stderr
    assert db.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_an_erased_person_can_come_back_by_their_own_confirmation(db: Session) -> None:
    from tests.subscribers.helpers import confirmation_link, outbox, path_of

    _person_with_history(db)
    assert cli("subscribers", "erase", EMAIL, "--yes").exit_code == 0
    web = client()
    assert web.post("/subscribe", data={"email": EMAIL}).status_code == 200
    link = path_of(confirmation_link(outbox()[-1]))
    web.get(link)
    assert db.scalars(select(Subscriber.status)).all() == ["pending"]
    assert web.post(link).status_code == 200
    db.expire_all()
    assert db.scalars(select(Subscriber.status)).all() == ["active"]
    assert db.scalar(select(func.count()).select_from(Suppression)) == 0
