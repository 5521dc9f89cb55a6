"""The admin's subscriber screens at listmonk's bar: substring search on a trigram index,
sorting with keyset pages that say where you are, confirmed bulk actions, a subscriber's
history and name, and the suppression list's look-up and manual add. Both engines."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from newsletter.db import transaction
from newsletter.people import erasure
from subscribers import listing
from subscribers.models import Subscriber, SubscriberStatus
from tests.web.conftest import csrf_from

PEOPLE = [
    ("reader1@example.org", "Ada Lovelace"),
    ("reader10@example.org", "Grace Hopper"),
    ("reader2@example.net", "Alan Turing"),
    ("ops@example.org", "Katherine Johnson"),
    ("zed@elsewhere.co", "Ada Lovelace"),
    ("percent%sign@elsewhere.co", "Under_Score"),
    ("quote@elsewhere.co", 'Say "hello" * OR'),
]


@pytest.fixture
def people(db_url: str) -> dict[str, int]:
    from subscribers import service

    ids = {}
    with transaction() as session:
        for email, name in PEOPLE:
            subscriber, _ = service.add_by_admin(session, email, name)
            ids[email] = subscriber.id
    return ids


def _emails(html: str) -> list[str]:
    return re.findall(r'<a href="/admin/subscribers/\d+">([^<]+)</a>', html)


def _token(admin: TestClient) -> str:
    return csrf_from(admin.get("/admin/subscribers").text)


# --- search ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("example.org", {"reader1@example.org", "reader10@example.org", "ops@example.org"}),
        ("reader1", {"reader1@example.org", "reader10@example.org"}),
        ("LOVELACE", {"reader1@example.org", "zed@elsewhere.co"}),
        ("velac", {"reader1@example.org", "zed@elsewhere.co"}),
        ("r2", {"reader2@example.net"}),  # under three characters: no trigram, a scan finds it
        ("%", {"percent%sign@elsewhere.co"}),  # LIKE wildcards are literal
        ("_", {"percent%sign@elsewhere.co"}),
        ('"hello" *', {"quote@elsewhere.co"}),  # FTS5 syntax is literal too
        ("nobody-at-all", set()),
    ],
)
def test_search_matches_anywhere_in_the_address_and_the_name(
    admin: TestClient, people: dict[str, int], term: str, expected: set[str]
) -> None:
    page = admin.get("/admin/subscribers", params={"q": term})
    assert page.status_code == 200
    assert set(_emails(page.text)) == expected
    assert f"of {len(expected)} matching" in page.text or (
        not expected and "None of 0" in page.text
    )


def test_the_search_index_follows_every_change(admin: TestClient, people: dict[str, int]) -> None:
    from subscribers import service

    with transaction() as session:
        service.rename(session, people["ops@example.org"], "Dorothy Vaughan")
        erasure.erase(session, people["reader1@example.org"])
        _fresh, _ = service.add_by_admin(session, "newcomer@example.org", "Mary Jackson")
    assert _emails(admin.get("/admin/subscribers", params={"q": "vaughan"}).text) == [
        "ops@example.org"
    ]
    assert _emails(admin.get("/admin/subscribers", params={"q": "katherine"}).text) == []
    assert "reader1@example.org" not in admin.get("/admin/subscribers?q=example.org").text
    assert "newcomer@example.org" in admin.get("/admin/subscribers?q=jackson").text


def test_the_search_runs_on_a_trigram_index(db_url: str, people: dict[str, int]) -> None:

    with transaction() as session:
        if session.get_bind().dialect.name == "sqlite":
            # The FTS5 trigram table answers, in step with the table (triggers).
            rows = session.execute(
                text("SELECT count(*) FROM subscriber_search WHERE subscriber_search MATCH :q"),
                {"q": '"example.org"'},
            ).scalar()
            assert rows == 3
        else:
            indexes = set(
                session.scalars(
                    text("SELECT indexname FROM pg_indexes WHERE tablename = 'subscribers'")
                )
            )
            assert {"ix_subscribers_email_trgm", "ix_subscribers_name_trgm"} <= indexes
            session.execute(text("SET LOCAL enable_seqscan = off"))
            stmt = select(Subscriber.id).where(Subscriber.email.like("%example.org%"))
            plan = "\n".join(
                session.scalars(
                    text(f"EXPLAIN {stmt.compile(compile_kwargs={'literal_binds': True})}")
                )
            )
            assert "ix_subscribers_email_trgm" in plan
        assert listing.count_matching(session, search="example.org") == 3


# --- sorting, keyset pages, where you are ---------------------------------------------------


def _walk(admin: TestClient, **params: str) -> tuple[list[str], list[str]]:
    """Follow "Next page" links from the first page; (every address seen, every position line)."""
    seen: list[str] = []
    where: list[str] = []
    url: str | None = "/admin/subscribers"
    first = True
    while url:
        page = admin.get(url, params=params if first else None).text
        first = False
        seen += _emails(page)
        found = re.search(r'<p id="where"[^>]*>([^<]+)', page)
        assert found
        where.append(" ".join(found.group(1).split()))
        link = re.search(r'<a href="([^"]+)" rel="next">', page)
        url = link.group(1).replace("&amp;", "&") if link else None
    return seen, where


@pytest.mark.parametrize("sort", ["joined", "email", "name", "status"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_every_sort_pages_through_every_row_once(
    admin: TestClient,
    people: dict[str, int],
    monkeypatch: pytest.MonkeyPatch,
    sort: str,
    order: str,
) -> None:
    from newsletter.web import admin as admin_pages
    from subscribers import service

    monkeypatch.setattr(admin_pages, "PAGE_SIZE", 2)
    with transaction() as session:
        service.unsubscribe(session, people["ops@example.org"])
        rows = session.execute(
            select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.status)
        ).all()
    key = {
        "joined": lambda r: (r.id,),
        "email": lambda r: (r.email, r.id),
        "name": lambda r: (r.name, r.id),
        "status": lambda r: (r.status.value, r.id),
    }[sort]
    expected = [r.email for r in sorted(rows, key=key, reverse=order == "desc")]
    seen, where = _walk(admin, sort=sort, order=order)
    if sort == "name":
        # Names compare by the database's collation; each page follows it, no row twice.
        assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
    else:
        assert seen == expected
    assert where == ["1–2 of 7", "3–4 of 7", "5–6 of 7", "7–7 of 7"]


def test_the_search_and_status_say_how_many_match(
    admin: TestClient, people: dict[str, int]
) -> None:
    page = admin.get("/admin/subscribers", params={"q": "example", "status": "active"}).text
    assert "1–4 of 4 matching “example” (active)" in " ".join(page.split())
    header = admin.get("/admin/subscribers", params={"sort": "email"}).text
    assert 'aria-sort="ascending"' in header


# --- bulk actions ---------------------------------------------------------------------------


def _status_of(ids: list[int]) -> list[SubscriberStatus | None]:
    with transaction() as session:
        found = dict(
            session.execute(
                select(Subscriber.id, Subscriber.status).where(Subscriber.id.in_(ids))
            ).all()
        )
    return [found.get(i) for i in ids]


def test_a_bulk_action_on_a_selection_asks_with_its_count_then_runs(
    admin: TestClient, people: dict[str, int]
) -> None:
    chosen = [people["reader1@example.org"], people["zed@elsewhere.co"]]
    form = {"csrf_token": _token(admin), "action": "unsubscribe", "scope": "selected", "id": chosen}
    ask = admin.post("/admin/subscribers/bulk", data=form)
    assert ask.status_code == 200
    assert "Unsubscribe 2 subscribers?" in ask.text
    assert _status_of(chosen) == [SubscriberStatus.ACTIVE] * 2  # nothing yet
    confirmed = csrf_from(ask.text)
    done = admin.post(
        "/admin/subscribers/bulk", data={**form, "csrf_token": confirmed, "confirmed": 2}
    )
    assert "2 of 2 subscribers unsubscribed." in done.text
    assert _status_of(chosen) == [SubscriberStatus.UNSUBSCRIBED] * 2
    with transaction() as session:
        from subscribers import repository

        subscriber = repository.get(session, chosen[0])
        assert subscriber is not None and subscriber.unsubscribed_at is not None
        assert repository.suppression_for(session, subscriber.email_hash) is not None
    assert _status_of([people["reader10@example.org"]]) == [SubscriberStatus.ACTIVE]


def test_a_bulk_action_on_the_filter_refuses_when_the_count_changed(
    admin: TestClient, people: dict[str, int]
) -> None:
    from subscribers import service

    form = {"csrf_token": _token(admin), "action": "erase", "scope": "filter", "q": "example.org"}
    ask = admin.post("/admin/subscribers/bulk", data=form)
    assert "Erase 3 subscribers?" in ask.text and "cannot be undone" in ask.text
    with transaction() as session:
        service.add_by_admin(session, "late@example.org", "Late Comer")
    changed = admin.post("/admin/subscribers/bulk", data={**form, "confirmed": 3})
    assert changed.status_code == 409
    assert "3 then, 4 now" in changed.text
    assert len(_emails(admin.get("/admin/subscribers?q=example.org").text)) == 4
    done = admin.post("/admin/subscribers/bulk", data={**form, "confirmed": 4})
    assert "4 of 4 subscribers erased." in done.text
    assert _emails(admin.get("/admin/subscribers?q=example.org").text) == []
    assert len(_emails(admin.get("/admin/subscribers").text)) == 4


def test_a_bulk_action_that_fails_half_way_leaves_everyone_as_they_were(
    app: object, admin: TestClient, people: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    real, calls = erasure.erase, []

    def erase_then_fail(session: object, subscriber_id: int, *, compact: bool = True) -> bool:
        calls.append(subscriber_id)
        if len(calls) == 2:
            raise RuntimeError("the disk is full")
        return real(session, subscriber_id, compact=compact)  # type: ignore[arg-type]

    monkeypatch.setattr(erasure, "erase", erase_then_fail)
    form = {
        "csrf_token": _token(admin),
        "action": "erase",
        "scope": "filter",
        "q": "example.org",
        "confirmed": 3,
    }
    with pytest.raises(RuntimeError):
        admin.post("/admin/subscribers/bulk", data=form)
    assert len(calls) == 2
    assert len(_emails(admin.get("/admin/subscribers?q=example.org").text)) == 3


def test_pause_resume_and_export_a_selection(admin: TestClient, people: dict[str, int]) -> None:
    chosen = [people["reader2@example.net"], people["ops@example.org"]]
    token = _token(admin)
    for action, paused in (("pause", True), ("resume", False)):
        form = {
            "csrf_token": token,
            "action": action,
            "scope": "selected",
            "id": chosen,
            "confirmed": 2,
        }
        admin.post("/admin/subscribers/bulk", data=form)
        with transaction() as session:
            flags = session.scalars(
                select(Subscriber.paused).where(Subscriber.id.in_(chosen))
            ).all()
        assert flags == [paused, paused]
    form = {"csrf_token": token, "action": "export", "scope": "selected", "id": chosen}
    assert "Export 2 subscribers?" in admin.post("/admin/subscribers/bulk", data=form).text
    download = admin.post("/admin/subscribers/bulk", data={**form, "confirmed": 2})
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert sorted(r["email"] for r in rows) == ["ops@example.org", "reader2@example.net"]


def test_bulk_needs_the_csrf_token_and_a_selection(
    admin: TestClient, people: dict[str, int]
) -> None:
    some = people["reader2@example.net"]
    refused = admin.post(
        "/admin/subscribers/bulk", data={"action": "erase", "id": [some], "confirmed": 1}
    )
    assert refused.status_code == 403
    assert _status_of([some]) == [SubscriberStatus.ACTIVE]
    empty = admin.post(
        "/admin/subscribers/bulk", data={"csrf_token": _token(admin), "action": "erase"}
    )
    assert "Tick at least one subscriber" in empty.text


# --- one subscriber -------------------------------------------------------------------------


def test_a_subscribers_page_shows_their_history_and_edits_the_name(admin: TestClient) -> None:
    from newsletter.tracking import service as tracking
    from tests.support.arrange import add_sent_issue

    browser = (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
    )
    with transaction() as session:
        sent = add_sent_issue(session, readers=2, sent_at=datetime(2026, 3, 2, 9, tzinfo=UTC))
        delivery = sent.deliveries[0]
        tracking.record_open(session, delivery, user_agent=browser, client_ip="203.0.113.9")
        tracking.record_click(session, delivery, "m1", user_agent=browser, client_ip="203.0.113.9")
        tracking.record_vote(
            session,
            delivery,
            "claude-vs-gpt",
            1,
            user_agent=browser,
            client_ip=None,
            confirmed=True,
        )
    reader = sent.subscribers[0]
    page = admin.get(f"/admin/subscribers/{reader}")
    assert page.status_code == 200
    deliveries = page.text.split('id="deliveries-h"', 1)[1].split("</section>", 1)[0]
    assert "2026-W10" in deliveries and ">sent<" in deliveries and "2026-03-02 09:00" in deliveries
    reading = page.text.split('id="events-h"', 1)[1].split("</section>", 1)[0]
    assert "opened" in reading and "clicked" in reading and "Claude vs GPT" in reading
    votes = page.text.split('id="votes-h"', 1)[1].split("</section>", 1)[0]
    assert "Claude vs GPT" in votes and "<td>GPT" in votes
    assert 'id="consent-h"' in page.text

    renamed = admin.post(
        f"/admin/subscribers/{reader}/name",
        data={"csrf_token": csrf_from(page.text), "name": "  Ada\r\nKing  "},
    )
    assert "Name saved: Ada King." in renamed.text
    assert "reader0@example.com" in admin.get("/admin/subscribers?q=ada king").text
    other = admin.get(f"/admin/subscribers/{sent.subscribers[1]}").text
    assert "opened" not in other.split('id="events-h"', 1)[1].split("</section>", 1)[0]


def test_an_erased_subscriber_has_no_page_and_no_history_anywhere(
    admin: TestClient, people: dict[str, int]
) -> None:
    victim = people["reader2@example.net"]
    page = admin.get(f"/admin/subscribers/{victim}")
    admin.post(
        f"/admin/subscribers/{victim}/erase",
        data={"csrf_token": csrf_from(page.text), "confirmed": "yes"},
    )
    assert admin.get(f"/admin/subscribers/{victim}").status_code == 404
    assert "reader2@example.net" not in admin.get("/admin/subscribers?q=reader2").text
    assert "Turing" not in admin.get("/admin/subscribers?q=turing").text


# --- suppressions ---------------------------------------------------------------------------


def test_look_an_address_up_and_suppress_one_by_hand(
    admin: TestClient, people: dict[str, int]
) -> None:
    before = admin.get("/admin/suppressions", params={"address": "Postmaster@Example.com"})
    assert "postmaster@example.com is not suppressed" in before.text.lower()
    token = csrf_from(before.text)
    added = admin.post(
        "/admin/suppressions",
        data={"csrf_token": token, "address": "Postmaster@Example.com", "note": "role account"},
    )
    assert "is now suppressed" in added.text
    assert "is suppressed</strong>: manual" in added.text and "role account" in added.text
    again = admin.post(
        "/admin/suppressions", data={"csrf_token": token, "address": "postmaster@example.com"}
    )
    assert "was already suppressed" in again.text
    # A suppressed address on the list gets no mail.
    from subscribers.repository import mailable_count

    with transaction() as session:
        audience = mailable_count(session)
    admin.post("/admin/suppressions", data={"csrf_token": token, "address": "ops@example.org"})
    with transaction() as session:
        assert mailable_count(session) == audience - 1
    # And the list says so beside their status, which still reads "active".
    listed = admin.get("/admin/subscribers", params={"q": "ops@example.org"}).text
    assert "suppressed: not mailed" in listed
    others = admin.get("/admin/subscribers", params={"q": "reader2@example.net"}).text
    assert "suppressed: not mailed" not in others
    bad = admin.get("/admin/suppressions", params={"address": "not an address"})
    assert bad.status_code == 400 and "not an address" in bad.text


# --- bad input ------------------------------------------------------------------------------

HUGE = str(10**30)
# As they arrive on the wire, percent-encoded: NUL, a UTF-16 surrogate written as UTF-8, a
# byte that is not UTF-8, and an overlong value. Starlette decodes the two bad encodings to
# U+FFFD, a character like any other: those must not fail, the rest are refused.
BAD_TEXT = ["a%00b", "%ED%A0%80", "%FF", "x" * 5000]
DECODED_TO_REPLACEMENT = ("%ED%A0%80", "%FF")


def _acceptable(status: int, fields: dict[str, str | list[str]]) -> bool:
    values = [
        v for value in fields.values() for v in (value if isinstance(value, list) else [value])
    ]
    if any(v in DECODED_TO_REPLACEMENT for v in values):
        return status < 500
    return 400 <= status < 500


FORM = {"content-type": "application/x-www-form-urlencoded"}


def _encoded(fields: dict[str, str | list[str]]) -> str:
    pairs = []
    for name, value in fields.items():
        for one in value if isinstance(value, list) else [value]:
            pairs.append(f"{name}={one}")
    return "&".join(pairs)


def test_bad_input_on_every_new_screen_is_a_4xx(admin: TestClient, people: dict[str, int]) -> None:
    token = _token(admin)
    some = str(people["reader2@example.net"])
    gets: list[tuple[str, dict[str, str | list[str]]]] = [
        ("/admin/subscribers", {name: value})
        for name in ("q", "status", "sort", "order", "after")
        for value in BAD_TEXT
    ]
    gets += [
        ("/admin/subscribers", {"sort": "name", "after": value, "after_id": "3"})
        for value in BAD_TEXT
    ]
    gets += [("/admin/subscribers", {"sort": "status", "after": "nonsense", "after_id": "3"})]
    gets += [
        ("/admin/subscribers", {name: value})
        for name in ("after_id", "start", "before")
        for value in (HUGE, "-1", "1e9", "x", "%00")
    ]
    gets += [("/admin/suppressions", {"address": value}) for value in BAD_TEXT]
    for path, params in gets:
        response = admin.get(f"{path}?{_encoded(params)}")
        assert _acceptable(response.status_code, params), (path, params, response.status_code)
    posts: list[tuple[str, dict[str, str | list[str]]]] = [
        ("/admin/subscribers/bulk", {"action": "erase", "id": [value]})
        for value in [HUGE, "-1", "x", "%00", "%D9%A1"]  # the last is an Arabic-Indic digit one
    ]
    posts += [
        ("/admin/subscribers/bulk", {"action": value, "id": [some]})
        for value in [*BAD_TEXT, "drop"]
    ]
    posts += [
        ("/admin/subscribers/bulk", {"action": "pause", "scope": "filter", "q": value})
        for value in BAD_TEXT
    ]
    posts += [
        ("/admin/subscribers/bulk", {"action": "pause", "id": [some], "confirmed": value})
        for value in (HUGE, "-1", "x")
    ]
    posts += [(f"/admin/subscribers/{some}/name", {"name": value}) for value in BAD_TEXT]
    posts += [(f"/admin/subscribers/{HUGE}/name", {"name": "x"})]
    posts += [("/admin/suppressions", {"address": value}) for value in BAD_TEXT]
    for path, data in posts:
        body = _encoded({"csrf_token": token, **data})
        response = admin.post(path, content=body, headers=FORM, follow_redirects=False)
        assert _acceptable(response.status_code, data), (path, data, response.status_code)
    assert _status_of([int(some)]) == [SubscriberStatus.ACTIVE]


def test_pausing_someone_who_left_is_not_counted_as_done(
    admin: TestClient, people: dict[str, int]
) -> None:
    """The confirmation counts what will happen; someone unsubscribed has no mail to pause,
    and pausing the already paused changes nothing: the notice says so."""
    from subscribers import service

    gone, still = people["reader2@example.net"], people["ops@example.org"]
    with transaction() as session:
        service.unsubscribe(session, gone, reason="test")
    token = _token(admin)
    form = {"csrf_token": token, "action": "pause", "scope": "selected", "id": [gone, still]}
    done = admin.post("/admin/subscribers/bulk", data={**form, "confirmed": 2})
    assert "1 of 2 subscribers paused." in done.text
    again = admin.post("/admin/subscribers/bulk", data={**form, "confirmed": 2})
    assert "0 of 2 subscribers paused." in again.text
    with transaction() as session:
        rows = dict(
            session.execute(
                select(Subscriber.id, Subscriber.paused).where(Subscriber.id.in_([gone, still]))
            ).all()
        )
    assert rows == {gone: False, still: True}
    page = admin.get(f"/admin/subscribers/{gone}").text
    assert "(paused)" not in page
