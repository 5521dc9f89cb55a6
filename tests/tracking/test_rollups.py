"""An issue's figures are kept as its events arrive and always equal a recount of the events:
after a real send with SendGrid's webhook talking back (late, duplicated, out of order,
concurrent), pixel and click hits and votes through the app, erasure, and on both engines.
`newsletter stats --check` proves it; `--repair` puts it right after a bug or retention run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app as cli
from newsletter.db import transaction
from newsletter.people.erasure import erase
from newsletter.security.delivery_tokens import delivery_token
from newsletter.sending.models import Delivery
from newsletter.settings import reset_settings
from newsletter.tracking import stats
from newsletter.tracking.models import TrackingRollup
from newsletter.tracking.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    encode_public_key,
    sign_payload,
)
from newsletter.web.app import create_app
from subscribers.models import Subscriber
from tests.sending.conftest import add_subscribers, make_issue
from tests.support.event_webhook import Outcome, TalkBack
from tests.tracking.conftest import BROWSER, World, build_world
from tests.tracking.test_talking_back import app_url, hook, key, send, talking_sendgrid

__all__ = ["app_url", "key"]  # fixtures

runner = CliRunner()


def check_cli(issue_id: int | None = None, *extra: str) -> Any:
    args = ["stats", *([str(issue_id)] if issue_id is not None else []), "--check", *extra]
    return runner.invoke(cli, args)


def agrees(issue_id: int) -> None:
    with transaction() as session:
        assert stats.check(session, issue_id) == []
    result = check_cli(issue_id)
    assert result.exit_code == 0, result.output
    assert "equal a recount" in result.output


def signed(key: ec.EllipticCurvePrivateKey, events: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps(events).encode()
    stamp = str(int(time.time()))
    return {
        "content": body,
        "headers": {
            SIGNATURE_HEADER: sign_payload(key, stamp, body),
            TIMESTAMP_HEADER: stamp,
            "Content-Type": "application/json",
        },
    }


def sg(world: World, index: int, name: str, event_id: str, at: datetime, **extra: Any) -> Any:
    return {
        "email": f"reader{index}@example.com",
        "timestamp": int(at.timestamp()),
        "event": name,
        "sg_event_id": event_id,
        "delivery_id": str(world.deliveries[index]),
        "issue_id": str(world.issue_id),
        **extra,
    }


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(), headers={"User-Agent": BROWSER}) as test_client:
        yield test_client


def test_a_real_send_talked_back_to_equals_its_recount(
    db: Session, app_url: str, key: ec.EllipticCurvePrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    emails = add_subscribers(db, 24)
    issue_id = make_issue(db)
    outcomes: dict[str, Outcome | str] = {
        emails[1]: Outcome("bounce"),
        emails[2]: Outcome("blocked"),
        emails[3]: Outcome("dropped", reason="Unsubscribed Address"),
        emails[4]: Outcome("spamreport"),
    }
    for i in range(5, 17):
        outcomes[emails[i]] = Outcome("open", machine=i % 3 == 0)
    config = TalkBack(
        url=f"{app_url}/webhooks/sendgrid",
        private_key=key,
        outcomes=outcomes,
        duplicate_fraction=0.5,
        shuffle=True,
        delay=(0.0, 0.3),
        batch_size=4,
        concurrency=3,  # POSTs at once: concurrent transactions on the same figures
        seed=19,
    )
    with talking_sendgrid(monkeypatch, config) as server:
        send(issue_id)
        hook(server).flush(timeout=60)
        assert hook(server).stats()["failed_posts"] == 0
    # The readers' own pixels, twice each for some, through the running app (seconds after
    # the send: no machine window, or they would all count as machines).
    monkeypatch.setenv("NEWSLETTER_MACHINE_WINDOW_SECONDS", "0")
    reset_settings()
    rows = db.execute(
        select(Delivery.id, Subscriber.public_id)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue_id)
        .order_by(Delivery.id)
    ).all()
    with httpx.Client(base_url=app_url, headers={"User-Agent": BROWSER}) as http:
        for delivery_id, public_id in rows[10:20] + rows[10:14]:
            assert http.get(f"/o/{delivery_token(delivery_id, public_id)}.gif").status_code == 200
    agrees(issue_id)
    with transaction() as session:
        n = stats.issue_stats(session, issue_id)
    assert (n["bounced"], n["blocked"], n["dropped"], n["complaints"]) == (1, 1, 1, 1)
    assert n["delivered"] == 24 - 3  # bounce, block, drop: not delivered; the rest are
    # People's opens: SendGrid's non-machine opens and the pixels, each delivery once.
    human_sendgrid = {i for i in range(5, 17) if i % 3 != 0}
    assert n["opens_unique"] == len(human_sendgrid | set(range(10, 20)))
    assert n["opens_machine"] == len([i for i in range(5, 17) if i % 3 == 0])


def test_hits_votes_unsubscribes_and_replayed_batches_equal_their_recount(
    db: Session, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())

    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", encode_public_key(key))
    reset_settings()
    world = build_world(db, readers=6)
    slug = world.slugs[1]
    for i in range(6):
        assert client.get(f"/o/{world.token(i)}.gif").status_code == 200
        assert client.get(f"/o/{world.token(i)}.gif").status_code == 200
    for i, link in ((0, "m0"), (0, "m0"), (0, "m1"), (1, "m1"), (2, "site"), (3, "m1")):
        assert client.get(f"/c/{world.token(i)}/{link}", follow_redirects=False).status_code == 302
    for i, tool in ((0, 1), (1, 0), (1, 1), (2, 0)):
        assert client.get(f"/v/{world.token(i)}/{slug}/{tool}").status_code == 200
    scanner = {"User-Agent": "Barracuda Sentinel"}
    client.get(f"/c/{world.token(4)}/m0", headers=scanner, follow_redirects=False)
    unsubscribe = client.post(
        f"/u/{world.token(5)}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert unsubscribe.status_code == 200
    now = datetime.now(UTC)
    # An open SendGrid saw a day before the pixel: it moves reader 0's first open earlier.
    earlier = now - timedelta(days=1)
    batch = [
        sg(world, 0, "delivered", "d0", now),
        sg(world, 1, "delivered", "d1", now),
        sg(world, 0, "open", "o0", earlier),
        sg(world, 2, "bounce", "b2", now, type="bounce"),
        sg(world, 3, "spamreport", "s3", now),
    ]
    for _ in range(3):  # SendGrid posts at least once: the same batch again counts nothing
        assert client.post("/webhooks/sendgrid", **signed(key, batch)).status_code == 200
    agrees(world.issue_id)
    with transaction() as session:
        n = stats.issue_stats(session, world.issue_id)
    assert n["opens_unique"] == 6 and n["delivered"] == 2 and n["bounced"] == 1
    assert n["complaints"] == 1 and n["unsubscribes"] == 1
    assert n["clicks_unique"] == 4 and n["clicks_machine"] == 1
    assert {link["key"]: link["clicks_unique"] for link in n["links"]} == {
        "m0": 1,
        "m1": 3,
        "site": 1,
    }
    assert [m["clicks_unique"] for m in n["matchups"]] == [1, 3]
    assert [m["title"] for m in n["matchups"]] == ["Cursor vs Windsurf", "Claude vs GPT"]
    assert n["voters"] == 3
    # Hours run from reader 0's earlier open to the pixels' hour.
    assert sum(n["opens_by_hour"]) == 6 and n["opens_by_hour"][0] == 1
    assert n["opens_first_hour"] == earlier.replace(minute=0, second=0, microsecond=0)
    assert len(n["opens_by_hour"]) in (25, 26)
    # Erasing readers changes no figure: their activity stays counted, anonymously.
    with transaction() as session:
        assert erase(session, world.subscribers[0]) and erase(session, world.subscribers[1])
    agrees(world.issue_id)
    with transaction() as session:
        assert stats.issue_stats(session, world.issue_id)["opens_unique"] == 6
    # A year on, the daily maintenance has cleared every event's detail (payload, user agent,
    # SendGrid's text): the figures still equal a recount, which reads only the facts.
    from newsletter.scheduling import maintenance

    report = maintenance.run(datetime.now(UTC) + timedelta(days=365))
    assert report.events_cleared > 0, report
    agrees(world.issue_id)
    with transaction() as session:
        after = stats.issue_stats(session, world.issue_id)
    assert after["opens_unique"] == 6 and after["bounced"] == 1 and after["clicks_machine"] == 1


def test_check_prints_each_difference_and_repair_puts_it_right(db: Session) -> None:
    world = build_world(db, readers=3)
    from newsletter.tracking import service

    at = datetime.now(UTC)
    for i in range(3):
        service.record_open(db, world.deliveries[i], user_agent=BROWSER, client_ip=None, now=at)
    db.commit()
    agrees(world.issue_id)
    # A bug (or a retention run deleting events) leaves the figures off.
    db.execute(
        update(TrackingRollup)
        .where(TrackingRollup.issue_id == world.issue_id, TrackingRollup.kind == "opened:h")
        .values(n=TrackingRollup.n + 5)
    )
    db.commit()
    broken = check_cli(world.issue_id)
    assert broken.exit_code == 1
    assert f"issue {world.issue_id}: opened:h: kept 8, recounted 3" in broken.output
    everywhere = check_cli()
    assert everywhere.exit_code == 1 and "opened:h: kept 8" in everywhere.output
    assert check_cli(world.issue_id, "--repair").exit_code == 0
    agrees(world.issue_id)
    with transaction() as session:
        assert stats.issue_stats(session, world.issue_id)["opens_unique"] == 3
    refused = runner.invoke(cli, ["stats", "--repair"])
    assert refused.exit_code == 1 and "give both" in refused.output


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_webhook_posts_on_postgres_still_equal_their_recount(
    db: Session, app_url: str, key: ec.EllipticCurvePrivateKey
) -> None:
    world = build_world(db, readers=40)
    now = datetime.now(UTC)
    # Eight threads post at once; every reader opens in several of them (distinct event ids),
    # so the same firsts and the same figures are inserted by concurrent transactions.
    batches = [
        [
            sg(world, i, "open", f"t{t}-o{i}", now - timedelta(minutes=(t * 7 + i) % 90))
            for i in range(40)
        ]
        + [sg(world, i, "delivered", f"t{t}-d{i}", now) for i in range(t, 40, 3)]
        for t in range(8)
    ]
    answers: list[int] = []
    start = threading.Barrier(len(batches))

    def post(events: list[dict[str, Any]]) -> None:
        with httpx.Client(base_url=app_url, timeout=30) as http:
            start.wait()
            answers.append(http.post("/webhooks/sendgrid", **signed(key, events)).status_code)

    threads = [threading.Thread(target=post, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * len(batches)
    agrees(world.issue_id)
    with transaction() as session:
        n = stats.issue_stats(session, world.issue_id)
    assert n["opens_unique"] == 40 and n["delivered"] == 40 and sum(n["opens_by_hour"]) == 40


@pytest.mark.parametrize("issue", [str(2**63), "-1", "0", "abc", "1e3", "99999"])
def test_stats_for_an_issue_that_cannot_exist_is_a_clear_refusal(db: Session, issue: str) -> None:
    build_world(db)
    for extra in ([], ["--json"], ["--check"]):
        result = runner.invoke(cli, ["stats", *extra, "--", issue])
        assert result.exit_code in (1, 2), (issue, extra, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output


def test_the_upgrade_counts_the_events_an_existing_database_already_has(
    db: Session, db_url: str
) -> None:
    from alembic import command

    from newsletter.db import dispose_engines
    from newsletter.migrate import alembic_config, upgrade
    from newsletter.tracking import service

    world = build_world(db, readers=4)
    at = datetime.now(UTC)
    for i in (0, 1, 2, 2):
        service.record_open(db, world.deliveries[i], user_agent=BROWSER, client_ip=None, now=at)
    service.record_click(db, world.deliveries[3], "m1", user_agent=BROWSER, client_ip=None, now=at)
    db.commit()
    db.close()
    dispose_engines()
    command.downgrade(alembic_config(db_url), "0008_healing")
    upgrade(db_url)
    agrees(world.issue_id)
    with transaction() as session:
        n = stats.issue_stats(session, world.issue_id)
    assert n["opens_unique"] == 3 and n["clicks_unique"] == 1 and sum(n["opens_by_hour"]) == 3


def test_the_counts_since_a_resume_and_per_bounce_type_equal_their_recount(
    db: Session, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reputation check's counts since an editor resumed the send take only what arrived
    after it, hard bounces only (not blocks) and people's complaints; a delivery that bounced
    both ways counts once under each SendGrid type. The recount must agree on each."""
    from newsletter.issues.models import Issue

    key = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", encode_public_key(key))
    reset_settings()
    world = build_world(db, readers=5)
    now = datetime.now(UTC)
    before = [
        sg(world, 0, "bounce", "b0", now, type="bounce"),
        sg(world, 1, "spamreport", "s1", now),
    ]
    assert client.post("/webhooks/sendgrid", **signed(key, before)).status_code == 200
    resumed = datetime.now(UTC)
    db.execute(update(Issue).where(Issue.id == world.issue_id).values(resumed_at=resumed))
    db.commit()
    time.sleep(0.01)
    after = [
        sg(world, 2, "bounce", "b2", now, type="bounce"),
        sg(world, 3, "bounce", "k3", now, type="blocked"),
        sg(world, 4, "bounce", "b4", now, type="bounce"),
        sg(world, 4, "bounce", "k4", now, type="blocked"),  # one delivery, both types
        sg(world, 2, "spamreport", "s2", now),
    ]
    assert client.post("/webhooks/sendgrid", **signed(key, after)).status_code == 200
    agrees(world.issue_id)
    from newsletter.tracking import rollups

    with transaction() as session:
        kept = rollups.figures(session, [world.issue_id])[world.issue_id]
        counted = rollups.recount(session, world.issue_id, resumed)
    since = rollups.since_key(resumed)
    assert kept[f"since:{since}:bounce"] == counted[f"since:{since}:bounce"] == 2
    assert kept[f"since:{since}:complained"] == counted[f"since:{since}:complained"] == 1
    assert kept["bounced_as:bounce"] == counted["bounced_as:bounce"] == 3
    assert kept["bounced_as:blocked"] == counted["bounced_as:blocked"] == 2
