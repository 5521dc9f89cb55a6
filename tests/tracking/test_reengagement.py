"""Asking the silent ones, once (issue 18): someone sent each of the last N issues who left no
person's open, click or vote gets one "still want this?" mail; its button keeps them, reading
again keeps them, silence pauses them after the answer window."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.issues.models import Issue, IssueStatus
from newsletter.scheduling.clock import ManualClock
from newsletter.scheduling.runner import Scheduler
from newsletter.sending.models import Delivery, DeliveryStatus
from newsletter.settings import reset_settings
from newsletter.tracking.models import EventType, TrackingEvent
from subscribers import service as subscribers
from subscribers.models import Subscriber
from tests.subscribers.helpers import cli, outbox

NOW = datetime.now(UTC).replace(microsecond=0)
ISSUES = 4


@pytest.fixture
def readers(db: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Four sent issues. `reader` opened one (a person), `quiet` was sent all four and only a
    mail proxy opened them, `newcomer` got the last three only, `paused` is paused."""
    monkeypatch.setenv("NEWSLETTER_REENGAGE_AFTER_ISSUES", str(ISSUES))
    monkeypatch.setenv("NEWSLETTER_REENGAGE_ANSWER_DAYS", "14")
    reset_settings()
    people = {}
    for name in ("reader", "quiet", "newcomer", "paused"):
        person, _ = subscribers.add_by_admin(db, f"{name}@example.com")
        people[name] = person.id
    subscribers.set_paused(db, people["paused"], True)
    for n in range(ISSUES):
        sent_at = NOW - timedelta(weeks=ISSUES - n)
        issue = Issue(
            week=f"2026-W{10 + n:02d}",
            status=IssueStatus.SENT,
            send_started_at=sent_at,
            sent_at=sent_at,
            cutoff_at=sent_at,
        )
        db.add(issue)
        db.flush()
        for name, subscriber_id in people.items():
            if name == "newcomer" and n == 0:
                continue
            delivery = Delivery(
                issue_id=issue.id,
                subscriber_id=subscriber_id,
                status=DeliveryStatus.SENT,
                sent_at=sent_at,
            )
            db.add(delivery)
            db.flush()
            machine = name != "reader" or n != 2
            if name in ("reader", "quiet"):
                db.add(
                    TrackingEvent(
                        type=EventType.OPENED,
                        source="first_party",
                        delivery_id=delivery.id,
                        issue_id=issue.id,
                        machine=machine,
                        occurred_at=sent_at,
                    )
                )
    db.commit()
    return people


def _asked(db: Session) -> dict[str, tuple[bool, bool]]:
    """Per person: (asked and awaited, paused)."""
    db.expire_all()
    rows = db.execute(
        select(
            Subscriber.email,
            Subscriber.reengage_asked_at,
            Subscriber.reengage_answered_at,
            Subscriber.paused,
        )
    )
    return {
        email.split("@")[0]: (
            asked is not None and (answered is None or answered < asked),
            paused,
        )
        for email, asked, answered, paused in rows
    }


def _tick(at: datetime) -> Scheduler:
    scheduler = Scheduler(clock=ManualClock(at))
    scheduler.dispatch()
    return scheduler


def test_the_silent_one_is_asked_once_and_the_button_keeps_them(
    readers: dict[str, int], db: Session
) -> None:
    report = Scheduler(clock=ManualClock(NOW)).dispatch()
    assert report.asked_still_reading == 1
    assert _asked(db) == {
        "reader": (False, False),
        "quiet": (True, False),
        "newcomer": (False, False),
        "paused": (False, True),
    }
    [mail] = [m for m in outbox() if "Still want" in str(m["Subject"])]
    assert str(mail["To"]) == "quiet@example.com"
    assert mail["List-Unsubscribe"]
    # Once a day at most, and never twice to the same person.
    assert (
        Scheduler(clock=ManualClock(NOW + timedelta(hours=2))).dispatch().asked_still_reading == 0
    )
    assert Scheduler(clock=ManualClock(NOW + timedelta(days=2))).dispatch().asked_still_reading == 0
    assert len([m for m in outbox() if "Still want" in str(m["Subject"])]) == 1

    # The person follows the mail's button: a page (a scanner's GET answers nothing), then
    # the button on it.
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"http://\S+/still-reading", text)
    assert link is not None
    path = link.group(0).split("8000", 1)[1]
    with TestClient(_app(), base_url="http://localhost:8000") as browser:
        page = browser.get(path)
        assert page.status_code == 200 and "Yes, keep sending" in page.text
        assert _asked(db)["quiet"] == (True, False)
        answered = browser.post(path, follow_redirects=True)
        assert "you stay on the list" in answered.text
    assert _asked(db)["quiet"] == (False, False)
    # Answered: not asked again the next day about the same silent issues.
    assert Scheduler(clock=ManualClock(NOW + timedelta(days=3))).dispatch().asked_still_reading == 0


def test_silence_pauses_after_the_window_and_the_button_ends_that_pause(
    readers: dict[str, int], db: Session
) -> None:
    _tick(NOW)
    report = Scheduler(clock=ManualClock(NOW + timedelta(days=13))).dispatch()
    assert report.paused_for_silence == 0
    report = Scheduler(clock=ManualClock(NOW + timedelta(days=15))).dispatch()
    assert report.paused_for_silence == 1
    assert _asked(db)["quiet"] == (True, True)
    assert subscribers.reengagement_counts(db) == {
        "asked_awaiting_answer": 0,
        "paused_for_no_answer": 1,
    }
    shown = cli("stats", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["re_engagement"] == {
        "asked_awaiting_answer": 0,
        "paused_for_no_answer": 1,
    }
    assert "0 asked and awaited, 1 paused after no answer" in cli("stats").output
    # A paused person is not mailed: the next issue's audience leaves them out.
    assert readers["quiet"] not in set(db.scalars(subscribers.mailable_ids_select()))
    subscribers.still_reading(db, readers["quiet"])
    db.commit()
    assert _asked(db)["quiet"] == (False, False)
    # A pause the person chose stays: the answer only ends the pause the silence made.
    subscribers.still_reading(db, readers["paused"])
    db.commit()
    assert _asked(db)["paused"] == (False, True)


def test_reading_again_after_being_asked_is_an_answer(readers: dict[str, int], db: Session) -> None:
    _tick(NOW)
    delivery = db.scalar(
        select(Delivery.id).where(Delivery.subscriber_id == readers["quiet"]).limit(1)
    )
    db.add(
        TrackingEvent(
            type=EventType.CLICKED,
            source="first_party",
            delivery_id=delivery,
            machine=False,
            occurred_at=NOW + timedelta(days=3),
        )
    )
    db.commit()
    report = Scheduler(clock=ManualClock(NOW + timedelta(days=15))).dispatch()
    assert report.paused_for_silence == 0
    assert _asked(db)["quiet"] == (False, False)


def test_turned_off_it_asks_nobody(
    readers: dict[str, int], db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_REENGAGE", "false")
    reset_settings()
    assert Scheduler(clock=ManualClock(NOW)).dispatch().asked_still_reading == 0
    assert not any(asked for asked, _ in _asked(db).values())


def _app() -> object:
    from newsletter.web.app import create_app

    return create_app()


def test_a_pause_or_resume_the_person_chooses_settles_the_question(
    readers: dict[str, int], db: Session
) -> None:
    """Found by the attacker: after resuming by themselves, a later pause they chose was lifted
    by the answer button, stats still counted them as paused for silence, and someone asked who
    resumed by themselves was paused for "no answer" at the next tick."""
    _tick(NOW)
    quiet = readers["quiet"]
    # Asked, then resumes by choice (after pausing): that answers the question.
    subscribers.set_paused(db, quiet, True)
    subscribers.set_paused(db, quiet, False)
    db.commit()
    assert _asked(db)["quiet"] == (False, False)
    report = Scheduler(clock=ManualClock(NOW + timedelta(days=15))).dispatch()
    assert report.paused_for_silence == 0 and _asked(db)["quiet"] == (False, False)
    # Paused for silence, resumed by choice, paused by choice: the button keeps their pause.
    db.execute(
        Subscriber.__table__.update()
        .where(Subscriber.id == quiet)
        .values(paused=True, reengage_asked_at=NOW, reengage_paused_at=NOW)
    )
    db.commit()
    subscribers.set_paused(db, quiet, False)
    subscribers.set_paused(db, quiet, True)
    db.commit()
    assert subscribers.reengagement_counts(db)["paused_for_no_answer"] == 0
    subscribers.still_reading(db, quiet)
    db.commit()
    assert _asked(db)["quiet"] == (False, True)


def test_the_answer_of_someone_who_left_changes_nothing_and_says_so(
    readers: dict[str, int], db: Session
) -> None:
    from newsletter import paths

    quiet = readers["quiet"]
    person = db.get(Subscriber, quiet)
    assert person is not None
    token = subscribers.subscriber_token(person.public_id)
    subscribers.unsubscribe(db, quiet)
    db.commit()
    with TestClient(_app(), base_url="http://localhost:8000") as browser:  # type: ignore[arg-type]
        answer = browser.post(paths.still_reading(token), follow_redirects=True)
    assert "You are not on the list: there is nothing to keep." in answer.text


def test_an_issue_id_beyond_the_column_is_not_found_at_every_command(
    readers: dict[str, int],
) -> None:
    for command in (["issue", "status"], ["issue", "show"], ["issue", "resume"], ["stats"]):
        shown = cli(*command, str(2**63))
        assert shown.exit_code == 1, (command, shown.output)
        assert "Traceback" not in shown.output and str(2**63) in shown.output


def test_two_schedulers_ticking_together_run_one_round_and_ask_once(
    readers: dict[str, int], db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from newsletter.people import reengagement

    real = reengagement.run
    entered: list[int] = []

    def slow_run(session: Session, now: datetime) -> reengagement.Round:
        # Slow enough that, with a read and a later write, the other scheduler would start
        # its own round meanwhile.
        entered.append(threading.get_ident())
        time.sleep(0.5)
        return real(session, now)

    monkeypatch.setattr(reengagement, "run", slow_run)
    start = threading.Barrier(2)
    reports = []

    def tick() -> None:
        start.wait()
        reports.append(Scheduler(clock=ManualClock(NOW)).dispatch())

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(entered) == 1
    assert sorted(r.asked_still_reading for r in reports) == [0, 1]
    assert [str(m["To"]) for m in outbox() if "Still want" in str(m["Subject"])] == [
        "quiet@example.com"
    ]
