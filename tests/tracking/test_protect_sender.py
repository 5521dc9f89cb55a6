"""A send protects the sender's reputation (issue 18): it pauses itself, and tells the editors,
once hard bounces or spam complaints among what it has sent pass their thresholds; soft
bounces in several issues in a row pause that subscriber."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter import paths
from newsletter.issues.models import Issue, IssueStatus
from newsletter.scheduling.runner import Scheduler
from newsletter.sending import service as sending
from newsletter.settings import reset_settings
from subscribers import service as subscribers
from subscribers.models import Subscriber
from tests.subscribers.helpers import outbox
from tests.tracking.conftest import World, build_world
from tests.tracking.test_healing import post, sendgrid_event


def _sending(db: Session, readers: int) -> World:
    world = build_world(db, readers=readers)
    db.execute(update(Issue).where(Issue.id == world.issue_id).values(status=IssueStatus.SENDING))
    db.commit()
    return world


def _issue(db: Session, world: World) -> tuple[IssueStatus, str | None]:
    db.expire_all()
    row = db.execute(
        select(Issue.status, Issue.pause_reason).where(Issue.id == world.issue_id)
    ).one()
    return row.status, row.pause_reason


def _bounces(world: World, readers: range, name: str = "bounce") -> list[dict[str, object]]:
    if name == "spamreport":
        return [sendgrid_event(world, i, "spamreport", f"s{i}") for i in readers]
    return [
        sendgrid_event(world, i, "bounce", f"b{i}", type="bounce", reason="550 no such user")
        for i in readers
    ]


def test_hard_bounces_past_the_threshold_pause_the_send_and_not_before(
    client: TestClient, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    world = _sending(db, 300)
    # 6 of 300 is 2.0%: at the threshold, not above it.
    post(client, signing_key, _bounces(world, range(6)))
    assert _issue(db, world) == (IssueStatus.SENDING, None)
    # The same events again count nothing more (each delivery once).
    post(client, signing_key, _bounces(world, range(6)))
    assert _issue(db, world) == (IssueStatus.SENDING, None)
    post(client, signing_key, _bounces(world, range(6, 7)))
    assert _issue(db, world) == (
        IssueStatus.PAUSED,
        "paused itself: hard bounces 7 of 300 sent (2.3%, above NEWSLETTER_PAUSE_BOUNCE_RATE 2.0%)",
    )


def test_one_complaint_in_three_hundred_pauses_the_send(
    client: TestClient, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    world = _sending(db, 300)
    post(client, signing_key, _bounces(world, range(1), "spamreport"))
    status, reason = _issue(db, world)
    assert status is IssueStatus.PAUSED
    assert reason == (
        "paused itself: spam complaints 1 of 300 sent (0.33%, above "
        "NEWSLETTER_PAUSE_COMPLAINT_RATE 0.10%)"
    )


def test_too_few_sent_to_judge_yet_pauses_nothing(
    client: TestClient, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    world = _sending(db, 100)
    post(client, signing_key, _bounces(world, range(20)))
    assert _issue(db, world) == (IssueStatus.SENDING, None)


def test_the_editors_are_told_once_and_resuming_clears_the_reason(
    client: TestClient,
    signing_key: ec.EllipticCurvePrivateKey,
    db: Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEWSLETTER_EDITOR_EMAILS", "ed@example.com")
    reset_settings()
    world = _sending(db, 300)
    post(client, signing_key, _bounces(world, range(1), "spamreport"))
    assert Scheduler().dispatch().pause_notices == [world.issue_id]
    assert Scheduler().dispatch().pause_notices == []
    [notice] = [m for m in outbox() if str(m["To"]) == "ed@example.com"]
    assert "paused itself: bounces or complaints" in str(notice["Subject"])
    body = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "spam complaints 1 of 300 sent" in body
    assert paths.absolute(paths.editor_issue(world.issue_id)) in body
    sending.resume(db, world.issue_id)
    db.commit()
    assert _issue(db, world) == (IssueStatus.SENDING, None)


@pytest.mark.parametrize("after", [3, 2])
def test_soft_bounces_in_issues_in_a_row_pause_the_subscriber(
    db: Session, monkeypatch: pytest.MonkeyPatch, after: int
) -> None:
    monkeypatch.setenv("NEWSLETTER_SOFT_BOUNCE_PAUSE_AFTER", str(after))
    reset_settings()
    world = build_world(db, readers=2)
    person, other = world.subscribers
    soft = subscribers.MailFact.SOFT_BOUNCE

    def paused(subscriber_id: int) -> bool:
        db.expire_all()
        found = db.get(Subscriber, subscriber_id)
        assert found is not None
        return found.paused

    # Issue 1 twice, then issue 2: two issues in a row, not three.
    assert not subscribers.on_mail_fact(db, person, soft, "blocked", issue_id=1)
    assert not subscribers.on_mail_fact(db, person, soft, "blocked", issue_id=1)
    changed = subscribers.on_mail_fact(db, person, soft, "blocked", issue_id=2)
    assert changed is (after == 2) and paused(person) is (after == 2)
    if after == 3:
        # A delivery in between starts the count again.
        subscribers.mail_delivered(db, [person])
        assert not subscribers.on_mail_fact(db, person, soft, "blocked", issue_id=3)
        assert not subscribers.on_mail_fact(db, person, soft, "blocked", issue_id=4)
        assert not paused(person)
        assert subscribers.on_mail_fact(db, person, soft, "blocked", issue_id=5)
        assert paused(person)
    assert not paused(other)


def test_a_blocked_bounce_from_the_webhook_counts_once_per_issue(
    client: TestClient, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    world = build_world(db, readers=1)
    blocked = [
        sendgrid_event(world, 0, "bounce", f"k{n}", type="blocked", reason="mailbox full")
        for n in range(4)
    ]
    post(client, signing_key, blocked)
    db.expire_all()
    row = db.execute(select(Subscriber.soft_bounces, Subscriber.paused)).one()
    assert (row.soft_bounces, row.paused) == (1, False)
    post(client, signing_key, [sendgrid_event(world, 0, "delivered", "ok")])
    db.expire_all()
    assert db.scalar(select(Subscriber.soft_bounces)) == 0


def test_after_an_editors_resume_only_new_bounces_count(
    client: TestClient, signing_key: ec.EllipticCurvePrivateKey, db: Session
) -> None:
    """Found by the attacker: a repeat bounce of a delivery already counted re-paused a send the
    editor had just resumed, so a send past the threshold could never go on."""
    world = _sending(db, 300)
    post(client, signing_key, _bounces(world, range(7)))
    assert _issue(db, world)[0] is IssueStatus.PAUSED
    sending.resume(db, world.issue_id)
    db.commit()
    again = [sendgrid_event(world, 0, "bounce", "again0", type="bounce", reason="550 no such user")]
    post(client, signing_key, again)
    assert _issue(db, world) == (IssueStatus.SENDING, None)
    # New bounces past the threshold after the resume pause it again.
    post(client, signing_key, _bounces(world, range(10, 17)))
    assert _issue(db, world)[0] is IssueStatus.PAUSED


def test_a_late_soft_bounce_of_an_earlier_issue_counts_nothing(db: Session) -> None:
    world = build_world(db, readers=1)
    [person] = world.subscribers
    soft = subscribers.MailFact.SOFT_BOUNCE
    subscribers.on_mail_fact(db, person, soft, "blocked", issue_id=1)
    subscribers.on_mail_fact(db, person, soft, "blocked", issue_id=2)
    subscribers.on_mail_fact(db, person, soft, "blocked", issue_id=1)  # late, out of order
    db.expire_all()
    row = db.execute(select(Subscriber.soft_bounces, Subscriber.soft_bounce_issue_id)).one()
    assert tuple(row) == (2, 2)
