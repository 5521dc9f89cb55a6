"""Subject tests (issue 17), on both engines, through the doors an editor uses (the CLI here; the
issue's page in test_subject_tests_web.py) and the mail readers get: the share gets its
subjects by the stable hash, readers click and vote through their own mail's links, the
scheduler chooses the winner by human clicks and votes once the wait is over, and everyone
else gets it. Per person, the outbox is checked against the ledger and the hash.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Integer, literal, select
from sqlalchemy.orm import Session

from newsletter.audience import split, subject_tests
from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.issues.models import IssueStatus, SubjectTest
from newsletter.matchups.service import import_matchup
from newsletter.orm import utcnow
from newsletter.scheduling.clock import ManualClock
from newsletter.scheduling.runner import Scheduler
from newsletter.sending import service as sending
from newsletter.sending.models import Delivery
from newsletter.sending.worker import run_until_done
from newsletter.web.app import create_app
from subscribers.models import Subscriber
from tests.issues.helpers import EXAMPLES, page
from tests.subscribers.helpers import cli
from tests.support import arrange
from tests.tracking.conftest import BROWSER
from tests.web.world import body, hrefs, mails, recipient

SCANNER = "Mozilla/5.0"  # a mail scanner's or Apple's proxy's request: a machine's, not a person's
SUBJECTS = ["Quillmate wins the writing round", "Which AI writer should you ship?"]
READERS = 60


def _outbox() -> list[EmailMessage]:
    return mails(Path(os.environ["NEWSLETTER_OUTBOX_DIR"]))


def _ids() -> dict[str, int]:
    with transaction() as session:
        return {e: i for e, i in session.execute(select(Subscriber.email, Subscriber.id))}


def _ledger(issue_id: int) -> dict[str, int | None]:
    """Each person's subject number, as their delivery says."""
    with transaction() as session:
        return {
            email: subject
            for email, subject in session.execute(
                select(Subscriber.email, Delivery.subject)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.issue_id == issue_id)
            )
        }


@pytest.fixture
def issue_id(db: Session) -> int:
    with transaction() as session:
        arrange.add_subscribers(session, READERS)
        for name in ("01_quillmate_vs_proseforge", "04_stackwise_vs_patchpilot"):
            import_matchup(session, page(EXAMPLES / f"{name}.txt"), utcnow() - timedelta(hours=1))
        return issues.build_issue(session).id


def _set(issue_id: int, *options: str) -> dict[str, Any]:
    done = cli("issue", "subject-test", str(issue_id), *options, "--json")
    assert done.exit_code == 0, done.output
    shown: dict[str, Any] = json.loads(done.stdout)
    return shown


def _expected_share(issue_id: int, share: int) -> dict[str, int]:
    """Who the hash puts in the test, and which subject: computed here, not read from the app."""
    return {
        email: split.subject_number(issue_id, sid, len(SUBJECTS))
        for email, sid in _ids().items()
        if split.in_share(issue_id, sid, share)
    }


def _follow(reader: TestClient, message: EmailMessage, part: str, agent: str = BROWSER) -> None:
    """Open a link of this message's own HTML (a click `/c/`, a vote `/v/`, the pixel `/o/`)."""
    html = body(message, "html")
    assert html is not None
    url = next(u for u in hrefs(html) if f"/{part}/" in urlsplit(u).path)
    path = urlsplit(url).path
    if part == "v":
        answered = reader.post(path, headers={"User-Agent": agent})
        assert answered.status_code == 200, answered.text
    else:
        answered = reader.get(path, headers={"User-Agent": agent}, follow_redirects=False)
        assert answered.status_code in (200, 302, 303), answered.text


def test_the_hash_is_the_same_in_python_and_in_sql(db: Session) -> None:
    with transaction() as session:
        arrange.add_subscribers(session, 2_000)
    with transaction() as session:
        rows = session.execute(
            select(
                Subscriber.id,
                split.hash_sql(31, Subscriber.id.expression),
                split.in_share_sql(31, Subscriber.id.expression, 20),
                split.subject_sql(31, Subscriber.id.expression, 3),
            )
        ).all()
        # The largest ids a row can have: no overflow on either engine.
        for big in (2**31 - 1, 2**31 - 2, 1):
            column = literal(big, Integer())
            rows.append(
                session.execute(
                    select(
                        column,
                        split.hash_sql(2**31 - 1, column),
                        split.in_share_sql(2**31 - 1, column, 20),
                        split.subject_sql(2**31 - 1, column, 3),
                    )
                ).one()
            )
    for sid, hashed, in_share, number in rows[:-3]:
        assert hashed == split.stable_hash(31, sid)
        assert bool(in_share) == split.in_share(31, sid, 20)
        assert number == split.subject_number(31, sid, 3)
    for sid, hashed, _, number in rows[-3:]:
        assert hashed == split.stable_hash(2**31 - 1, sid)
        assert number == split.subject_number(2**31 - 1, sid, 3)
    # Evenly spread: a 20% share of 2,000 is about 400, each of three subjects about a third.
    chosen = [n for _, _, inside, n in rows[:-3] if inside]
    assert 330 <= len(chosen) <= 470
    assert all(100 <= chosen.count(n) <= 175 for n in (1, 2, 3)), [
        chosen.count(n) for n in (1, 2, 3)
    ]
    # The edge: a bucket equal to the cut is outside the share, in SQL as in Python.
    edge = next(i for i in range(1, 10**6) if split.stable_hash(31, i) % split.BUCKETS == 2_000)
    below = next(i for i in range(1, 10**6) if split.stable_hash(31, i) % split.BUCKETS == 1_999)
    with transaction() as session:
        for sid, inside in ((edge, False), (below, True)):
            column = literal(sid, Integer())
            assert bool(session.scalar(select(split.in_share_sql(31, column, 20)))) is inside
            assert split.in_share(31, sid, 20) is inside
    # Another issue splits the list another way: the same people are not always the test.
    other = {sid for sid, *_ in rows[:-3] if split.in_share(32, sid, 20)}
    assert len(other & {sid for sid, _, inside, _ in rows[:-3] if inside}) < 150


def test_the_share_gets_its_subjects_then_the_human_clicks_choose_the_winner_for_the_rest(
    db: Session, issue_id: int
) -> None:
    assert cli("issue", "approve", str(issue_id)).exit_code == 0
    done = cli(
        "issue", "subject-test", str(issue_id), "--subject", SUBJECTS[0],
        "--subject", SUBJECTS[1], "--share", "50", "--wait", "2h", "--json",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    shown = json.loads(done.stdout)
    # A test is an edit: the approval is withdrawn, and the editor approves it again.
    assert shown["approval_withdrawn"] is True and "approve it again" in done.stderr
    assert shown["subject_test"]["phase"] == "set"
    assert shown["subject_test"]["subjects"] == SUBJECTS
    assert shown["subject_test"]["share"] == 50 and shown["subject_test"]["wait_minutes"] == 120
    assert shown["subject_test"]["can_pick"] is False  # nothing to pick before the send
    before = cli("issue", "subject-test", str(issue_id)).output.splitlines()
    assert before == [
        "subject test set: 2 subjects on 50% of the audience; the winner goes to the rest 2h "
        "after the send starts",
        f"  1. {SUBJECTS[0]}",
        f"  2. {SUBJECTS[1]}",
    ]
    assert cli("issue", "approve", str(issue_id)).exit_code == 0

    started = utcnow()
    sent = cli("issue", "send", str(issue_id))
    assert sent.exit_code == 0, sent.output
    expected = _expected_share(issue_id, 50)
    assert 15 <= len(expected) <= 45
    assert f"{len(expected)} people were sent their subjects (the 50% share)" in sent.output
    got = {recipient(m): str(m["Subject"]) for m in _outbox()}
    # Exactly the share, each with the subject the hash gives them, as the ledger says.
    assert got == {email: SUBJECTS[n - 1] for email, n in expected.items()}
    assert _ledger(issue_id) == expected
    # The page's title says the subject they got, too.
    for message in _outbox():
        html = body(message, "html")
        assert html is not None and f"<title>{message['Subject']}</title>" in html
    with transaction() as session:
        issue = issues.require(session, issue_id)
        # Nothing left to send, and not "sent": the rest waits for the winner.
        assert issue.status is IssueStatus.SENDING
        assert issue.audience is not None and issue.audience["recipients"] == len(expected)

    # Two readers of the second subject click and one votes, through their own mail; readers of
    # the first open it, and a scanner clicks one of theirs: neither is a person's click.
    with transaction() as session:
        # They read it an hour later (a hit seconds after the send is a machine's).
        sending.backdate_deliveries(session, issue_id, by=timedelta(hours=1))
    by_subject: dict[int, list[EmailMessage]] = {1: [], 2: []}
    for message in _outbox():
        by_subject[expected[recipient(message)]].append(message)
    with TestClient(create_app()) as reader:
        _follow(reader, by_subject[2][0], "c")
        _follow(reader, by_subject[2][1], "c")
        _follow(reader, by_subject[2][1], "v")
        for message in by_subject[1][:3]:
            _follow(reader, message, "o")
        _follow(reader, by_subject[1][0], "c", agent=SCANNER)

    running = cli("issue", "subject-test", str(issue_id), "--json")
    assert json.loads(running.stdout)["subject_test"]["can_pick"] is True
    shown_text = cli("issue", "subject-test", str(issue_id)).output
    assert (
        f"subject test running: {len(expected)} people were sent their subjects (the 50% "
        "share of the audience, 2 subjects)" in shown_text
    )
    clock = ManualClock(started + timedelta(minutes=119))
    scheduler = Scheduler(clock=clock)
    assert scheduler.tick().subject_winners == []
    assert len(_outbox()) == len(expected)
    clock.set(started + timedelta(minutes=121))
    assert scheduler.tick().subject_winners == [(issue_id, 2)]

    # Everyone else got the winner; nobody got two mails.
    everyone = set(_ids())
    got_all = [recipient(m) for m in _outbox()]
    assert sorted(got_all) == sorted(everyone)
    ledger = _ledger(issue_id)
    for message in _outbox():
        email = recipient(message)
        number = expected.get(email, 2)
        assert str(message["Subject"]) == SUBJECTS[number - 1], email
        assert ledger[email] == number
    report = _set(issue_id)["subject_test"]
    assert report["phase"] == "decided" and report["winner"] == 2
    assert report["decided_by"] == "the figures"
    first, second = report["decision"]["subjects"]
    assert (first["clicked"], first["voted"], first["engaged"]) == (0, 0, 0)
    assert first["opened"] == 3
    assert (second["clicked"], second["voted"], second["engaged"]) == (2, 1, 2)
    assert first["sent"] + second["sent"] == len(expected)
    assert second["rate"] == pytest.approx(2 / second["sent"], abs=1e-6)
    assert report["decision"]["why"].startswith("the highest rate")
    # The winner's figures over the whole send include the rest; the test's are the share's.
    overall = {f["number"]: f for f in report["overall"]}
    assert overall[2]["deliveries"] == READERS - first["deliveries"]
    assert report["can_pick"] is False
    # A reader of the rest clicks: the whole send's figures move, the test's do not.
    with transaction() as session:
        sending.backdate_deliveries(session, issue_id, by=timedelta(hours=1))
    rest_mail = next(m for m in _outbox() if recipient(m) not in expected)
    with TestClient(create_app()) as reader:
        _follow(reader, rest_mail, "c")
    after = _set(issue_id)["subject_test"]
    tested = {f["number"]: f for f in after["test"]}
    assert tested[2]["clicked"] == 2 and tested[2]["deliveries"] == second["deliveries"]
    whole = {f["number"]: f for f in after["overall"]}
    assert whole[2]["clicked"] == 3 and whole[2]["deliveries"] == overall[2]["deliveries"]
    assert after["decision"] == report["decision"]  # what decided is kept as it was
    with transaction() as session:
        issue = issues.require(session, issue_id)
        assert issue.status is IssueStatus.SENT
        assert issue.audience is not None and issue.audience["recipients"] == READERS
        assert issue.audience["subject_test"]["winner"] == 2
    numbers = cli("stats", str(issue_id), "--json")
    assert json.loads(numbers.stdout)["subject_test"]["winner"] == 2
    assert "subject test decided: 50% of the audience tried 2 subjects" in (
        cli("stats", str(issue_id)).output
    )
    text = cli("issue", "subject-test", str(issue_id))
    assert text.exit_code == 0
    assert "*2. Which AI writer should you ship?" in text.output
    assert "decided by the figures" in text.output
    # Decided is decided: the editor can no longer pick, a second scheduler does nothing.
    late = cli("issue", "subject-test", str(issue_id), "--winner", "1")
    assert late.exit_code == 1 and "decided already" in late.output
    assert Scheduler(clock=clock).tick().subject_winners == []
    assert len(_outbox()) == READERS


def _send_test_share(issue_id: int, share: int = 40) -> dict[str, int]:
    with transaction() as session:
        subject_tests.set_test(session, issue_id, SUBJECTS, share=share, wait_minutes=60)
        issues.approve(session, issue_id, by="editor@example.com")
    assert cli("issue", "send", str(issue_id)).exit_code == 0
    expected = _expected_share(issue_id, share)
    assert _ledger(issue_id) == expected
    return expected


def test_the_editor_picks_the_winner_by_hand_before_the_wait_is_over(
    db: Session, issue_id: int
) -> None:
    expected = _send_test_share(issue_id)
    bad = cli("issue", "subject-test", str(issue_id), "--winner", "3")
    assert bad.exit_code == 1 and "subjects 1 to 2, not 3" in bad.output
    words = cli("issue", "subject-test", str(issue_id), "--winner", "first")
    assert words.exit_code == 1 and "a subject's number or 'best'" in words.output
    assert len(_outbox()) == len(expected)
    picked = _set(issue_id, "--winner", "1")["subject_test"]
    assert picked["winner"] == 1 and picked["decision"]["why"] == "chosen by hand"
    assert picked["decided_by"] == "cli"
    assert sorted(recipient(m) for m in _outbox()) == sorted(_ids())
    ledger = _ledger(issue_id)
    assert {e: n for e, n in ledger.items() if e in expected} == expected
    assert {n for e, n in ledger.items() if e not in expected} == {1}
    for message in _outbox():
        assert str(message["Subject"]) == SUBJECTS[ledger[recipient(message)] - 1]  # type: ignore[operator]
    with transaction() as session:
        assert issues.require(session, issue_id).status is IssueStatus.SENT
    # The scheduler, past the wait, finds it decided.
    later = ManualClock(utcnow() + timedelta(hours=2))
    assert Scheduler(clock=later).tick().subject_winners == []
    assert len(_outbox()) == READERS


def test_a_share_nobody_in_it_is_mailed_still_waits_for_the_winner_and_the_rest_gets_it(
    db: Session, issue_id: int
) -> None:
    """Everyone the hash puts in the share left before the send: the share has nobody to
    mail. The issue stays "sending" with its test under way (not "sent" with most of the list
    never mailed); after the wait the scheduler sends the winner to everyone else."""
    from subscribers import service as subscribers

    share = _expected_share(issue_id, 20)
    assert share
    with transaction() as session:
        for email in share:
            subscribers.unsubscribe(session, _ids()[email])
        subject_tests.set_test(session, issue_id, SUBJECTS, share=20, wait_minutes=60)
        issues.approve(session, issue_id, by="editor@example.com")
    started = utcnow()
    sent = cli("issue", "send", str(issue_id))
    assert sent.exit_code == 0, sent.output
    assert "0 people were sent their subjects (the 20% share)" in sent.output
    assert _outbox() == []
    with transaction() as session:
        assert issues.require(session, issue_id).status is IssueStatus.SENDING
    report = _set(issue_id)["subject_test"]
    assert report["phase"] == "testing" and report["can_pick"] is True
    assert report["in_test"] == 0
    clock = ManualClock(started + timedelta(minutes=61))
    assert Scheduler(clock=clock).tick().subject_winners == [(issue_id, 1)]
    rest = sorted(e for e in _ids() if e not in share)
    assert sorted(recipient(m) for m in _outbox()) == rest
    assert {str(m["Subject"]) for m in _outbox()} == {SUBJECTS[0]}
    with transaction() as session:
        assert issues.require(session, issue_id).status is IssueStatus.SENT
    decided = _set(issue_id)["subject_test"]
    assert decided["decision"]["why"].startswith("no click or vote yet")


def test_the_share_line_counts_the_people_sent_not_the_deliveries_made(
    db: Session, issue_id: int
) -> None:
    """Those in the share who left after the snapshot are skipped at the send: the report
    says how many of the share were sent, not that every one of them was."""
    from newsletter.audience import service as audience
    from subscribers import service as subscribers

    with transaction() as session:
        subject_tests.set_test(session, issue_id, SUBJECTS, share=40, wait_minutes=60)
        issues.approve(session, issue_id, by="editor@example.com")
    with transaction() as session:
        assert audience.start_send(session, issue_id)
    share = _expected_share(issue_id, 40)
    gone = sorted(share)[:3]
    with transaction() as session:
        for email in gone:
            subscribers.unsubscribe(session, _ids()[email])
    run_until_done(issue_id, worker_id="test:1")
    assert len(_outbox()) == len(share) - 3
    text = cli("issue", "subject-test", str(issue_id)).output
    assert (
        f"subject test running: {len(share)} people in the share, {len(share) - 3} of them "
        "sent their subject (the others skipped, failed or not sent yet)" in text
    )


def test_the_report_reads_the_ledger_and_the_firsts_once_each_in_every_phase(
    db: Session, issue_id: int
) -> None:
    """The editor's page shows the share's figures and, once decided, the whole send's too:
    one pass over the issue's subject deliveries and one over its firsts give both (at a
    million readers each pass is a scan of the issue)."""
    from sqlalchemy import event

    from newsletter.db import get_engine

    expected = _send_test_share(issue_id)
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = " ".join(str(args[2]).split())
        if "deliveries.subject" in statement:
            seen.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    try:
        with transaction() as session:
            testing = subject_tests.report(session, issue_id)
        assert len(seen) == 2, seen
        assert sum("tracking_firsts" in s for s in seen) == 1
        seen.clear()
        assert _set(issue_id, "--winner", "2")["subject_test"]["winner"] == 2
        seen.clear()
        with transaction() as session:
            decided = subject_tests.report(session, issue_id)
        assert len(seen) == 2, seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert testing is not None and decided is not None
    assert testing["overall"] == [] and testing["in_test"] == len(expected)
    # The share's figures are the same read either way; the whole send's take in the rest.
    assert [f["deliveries"] for f in decided["test"]] == [f["deliveries"] for f in testing["test"]]
    assert sum(f["deliveries"] for f in decided["overall"]) == READERS
    assert decided["overall"][0]["deliveries"] == decided["test"][0]["deliveries"]


def test_a_crash_between_the_test_and_the_winner_leaves_it_undecided_and_changes_nobody(
    db: Session, issue_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _send_test_share(issue_id)
    real = sending._snapshot

    def dies(*args: Any, **kwargs: Any) -> int:
        real(*args, **kwargs)  # the rest's deliveries written, then the process dies
        raise SystemExit("killed")

    monkeypatch.setattr(sending, "_snapshot", dies)
    later = utcnow() + timedelta(hours=2)
    with pytest.raises(SystemExit), transaction() as session:
        subject_tests.decide_if_due(session, issue_id, later)
    # Nothing of the decision or of the rest's deliveries was kept.
    assert _ledger(issue_id) == expected
    with transaction() as session:
        test = session.get(SubjectTest, issue_id)
        assert test is not None and test.decided_at is None and test.winner is None
        assert issues.require(session, issue_id).status is IssueStatus.SENDING
    monkeypatch.setattr(sending, "_snapshot", real)
    # The restarted scheduler decides it, once; the share keeps its subjects.
    report = Scheduler(clock=ManualClock(later)).tick()
    assert report.subject_winners == [(issue_id, 1)]  # no click or vote: the first subject
    ledger = _ledger(issue_id)
    assert {e: n for e, n in ledger.items() if e in expected} == expected
    assert sorted(recipient(m) for m in _outbox()) == sorted(_ids())
    with transaction() as session:
        test = session.get(SubjectTest, issue_id)
        assert test is not None and test.decision is not None
        assert (
            test.decision["why"] == "no click or vote yet by anyone in the test: the first subject"
        )


def test_two_workers_in_each_phase_and_two_deciders_mail_each_person_once(
    db: Session, issue_id: int
) -> None:
    with transaction() as session:
        subject_tests.set_test(session, issue_id, SUBJECTS, share=30, wait_minutes=10)
        issues.approve(session, issue_id, by="editor@example.com")
    with transaction() as session:
        from newsletter.audience import service as audience

        assert audience.start_send(session, issue_id)

    def two_workers() -> None:
        workers = [
            threading.Thread(target=run_until_done, args=(issue_id,), kwargs={"worker_id": w})
            for w in ("host-a", "host-b")
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)

    two_workers()
    expected = _expected_share(issue_id, 30)
    assert sorted(recipient(m) for m in _outbox()) == sorted(expected)
    later = utcnow() + timedelta(minutes=11)
    decided: list[Any] = []
    errors: list[BaseException] = []

    def decide() -> None:
        try:
            with transaction() as session:
                decided.append(subject_tests.decide_if_due(session, issue_id, later))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    deciders = [threading.Thread(target=decide) for _ in range(2)]
    for thread in deciders:
        thread.start()
    for thread in deciders:
        thread.join(60)
    assert not errors, errors
    assert len([d for d in decided if d is not None]) == 1
    two_workers()
    got = [recipient(m) for m in _outbox()]
    assert sorted(got) == sorted(_ids()), "someone was mailed twice or not at all"
    ledger = _ledger(issue_id)
    for message in _outbox():
        assert str(message["Subject"]) == SUBJECTS[ledger[recipient(message)] - 1]  # type: ignore[operator]
    with transaction() as session:
        assert issues.require(session, issue_id).status is IssueStatus.SENT


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--subject", "Only one"], "needs 2 to 4 subjects, 1 given"),
        ([f"--subject=S{i}" for i in range(5)], "needs 2 to 4 subjects, 5 given"),
        (["--subject", "Same words", "--subject", "SAME  words"], "subjects 1 and 2 are the same"),
        # Full-width letters are the same words to a reader (NFKC).
        (["--subject", "Ship it", "--subject", "Ｓｈｉｐ ｉｔ"], "subjects 1 and 2 are the same"),
        (["--subject", "A", "--subject", "x" * 151], "subject 2 is 151 characters: at most 150"),
        (["--subject", "A", "--subject", "\x00\x01"], "subject 2 has no printable text"),
        (["--subject", "A", "--subject", "B", "--share", "0"], "1 to 100 percent, not 0"),
        (["--subject", "A", "--subject", "B", "--share", "101"], "1 to 100 percent, not 101"),
        (
            ["--subject", "A", "--subject", "B", "--share", str(10**30)],
            "1 to 100 percent, not 1,000,000,000,000,000,000,000,000,000,000",
        ),
        (["--subject", "A", "--subject", "B", "--wait", "soon"], "is not a duration"),
        (["--subject", "A", "--subject", "B", "--wait", "0m"], "1 to 10,080 minutes, not 0"),
        (
            ["--subject", "A", "--subject", "B", "--wait", "8d"],
            "the wait must be 1 to 10,080 minutes, not 11,520",
        ),
        (["--subject", "A", "--subject", "B", "--wait", "-5m"], "is not a duration"),
        (["--subject", "A", "--subject", "B", "--wait", "9" * 400], "has no unit"),
        # A bare number: 4 what? (an editor meaning hours would get minutes)
        (["--subject", "A", "--subject", "B", "--wait", "4"], "has no unit: write 4m for"),
        # Full-width digits are not a duration either.
        (["--subject", "A", "--subject", "B", "--wait", "４h"], "is not a duration"),
        (["--subject", "", "--subject", "B"], "subject 1 is blank"),
        (["--subject", "\u200b", "--subject", "A", "--subject", "B"], "subject 1 has no printable"),
        (["--subject", "A\u200b", "--subject", "A"], "subjects 1 and 2 are the same"),
        (["--subject", "A\u202e", "--subject", "\u2066A"], "subjects 1 and 2 are the same"),
        (["--queue-only"], "--queue-only goes with --winner"),
        (["--share", "30"], "has no subject test: give 2 to 4 --subject"),
        (["--remove"], "has no subject test to remove"),
        (["--winner", "1"], "has no subject test"),
        (["--subject", "A", "--subject", "B", "--remove"], "choose one"),
    ],
)
def test_a_bad_test_is_refused_saying_what_is_wrong_and_nothing_is_saved(
    db: Session, issue_id: int, options: list[str], message: str
) -> None:
    assert cli("issue", "approve", str(issue_id)).exit_code == 0
    done = cli("issue", "subject-test", str(issue_id), *options)
    assert done.exit_code != 0
    assert message in done.output, done.output
    assert "Traceback" not in done.output
    with transaction() as session:
        assert session.get(SubjectTest, issue_id) is None
        assert issues.require(session, issue_id).status is IssueStatus.APPROVED


def test_control_characters_and_lone_surrogates_in_a_subject(db: Session, issue_id: int) -> None:
    with (
        transaction() as session,
        pytest.raises(subject_tests.SubjectTestError, match="subject 2 is not valid text"),
    ):
        subject_tests.set_test(session, issue_id, ["Fine", "bad \ud800 one"])
    with transaction() as session:
        # A NUL or a line break cannot reach a header: made one line.
        subject_tests.set_test(
            session,
            issue_id,
            [
                "One\x00line",
                "Two\r\nBcc: x@evil.example",
                "\u202eReversed\u200b",
                "Cafe\u0301 " * 30,
            ],
        )
    with transaction() as session:
        test = session.get(SubjectTest, issue_id)
        assert test is not None
        # One line each, no invisible controls, an accent typed as a combining mark one character
        # (NFC): 150 characters, not 180.
        assert test.subjects == [
            "One line",
            "Two Bcc: x@evil.example",
            "Reversed",
            " ".join(["Café"] * 30),
        ]


def test_a_door_that_forgets_the_test_cannot_send_everyone_one_subject(
    db: Session, issue_id: int
) -> None:
    with transaction() as session:
        subject_tests.set_test(session, issue_id, SUBJECTS, share=30, wait_minutes=60)
        issues.approve(session, issue_id, by="editor@example.com")
    with transaction() as session, pytest.raises(sending.SendError, match="has a subject test"):
        sending.start_send(session, issue_id)
    with transaction() as session:
        assert issues.require(session, issue_id).status is IssueStatus.APPROVED
    assert _ledger(issue_id) == {}


def test_the_test_is_fixed_once_the_send_starts(db: Session, issue_id: int) -> None:
    _send_test_share(issue_id)
    for options in (["--subject", "C", "--subject", "D"], ["--remove"], ["--share", "90"]):
        done = cli("issue", "subject-test", str(issue_id), *options)
        assert done.exit_code == 1 and "too late to change its subject test" in done.output
    with transaction() as session:
        test = session.get(SubjectTest, issue_id)
        assert test is not None and test.subjects == SUBJECTS and test.share == 40


def test_a_paused_or_cancelled_send_is_not_decided_by_the_scheduler(
    db: Session, issue_id: int
) -> None:
    _send_test_share(issue_id)
    assert cli("issue", "pause", str(issue_id)).exit_code == 0
    later = ManualClock(utcnow() + timedelta(hours=2))
    assert Scheduler(clock=later).tick().subject_winners == []
    assert cli("issue", "resume", str(issue_id), "--no-wait").exit_code == 0
    assert Scheduler(clock=later).tick().subject_winners == [(issue_id, 1)]


def test_the_scheduler_waits_for_the_share_to_be_sent_before_deciding(
    db: Session, issue_id: int
) -> None:
    from newsletter.audience import service as audience

    with transaction() as session:
        subject_tests.set_test(session, issue_id, SUBJECTS, share=50, wait_minutes=10)
        issues.approve(session, issue_id, by="editor@example.com")
    with transaction() as session:
        assert audience.start_send(session, issue_id)
    later = utcnow() + timedelta(minutes=11)
    # Past the wait, but the share's deliveries are still queued: their figures are not in.
    with transaction() as session:
        assert sending.any_delivery_open(session, issue_id)
        assert subject_tests.decide_if_due(session, issue_id, later) is None
    run_until_done(issue_id, worker_id="share-worker")
    with transaction() as session:
        assert not sending.any_delivery_open(session, issue_id)
        decision = subject_tests.decide_if_due(session, issue_id, later)
        assert decision is not None and decision.winner == 1
