"""Statistics per topic (issue 17): the readers of each variant of an issue counted apart, as
their events arrive, through the doors readers and SendGrid use: the pixel and the links of the
mail each reader got (from the outbox), a vote, and SendGrid's signed webhook; equal to a
recount (`stats --check`), shown by the CLI, the API and the editor's page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.accounts.models import Role
from newsletter.accounts.service import create_user, find, issue_api_token
from newsletter.db import transaction
from newsletter.sending.models import Delivery
from newsletter.sending.service import backdate_deliveries, start_send
from newsletter.sending.worker import run_until_done
from newsletter.settings import reset_settings
from newsletter.tracking import stats
from newsletter.tracking.models import TrackingRollup
from newsletter.tracking.webhook import encode_public_key
from newsletter.web.app import create_app
from subscribers.models import Subscriber
from tests.sending.test_topics_send import _by_reader, week
from tests.subscribers.helpers import cli
from tests.tracking.conftest import BROWSER
from tests.tracking.test_rollups import agrees, check_cli, signed
from tests.web.conftest import EDITOR, PASSWORD, sign_in
from tests.web.world import body

__all__ = ["week"]  # the fixture


def _path(url: str) -> str:
    parts = urlsplit(unescape(url))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _pixel(html: str) -> str:
    found = re.search(r'src="([^"]*/o/[^"]+)"', html)
    assert found, "no pixel in the mail"
    return _path(found[1])


def _clicks(html: str) -> list[str]:
    return [_path(u) for u in re.findall(r'href="([^"]*/c/[^"]+)"', html)]


@pytest.fixture
def reader_client(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Any]]:
    key = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", encode_public_key(key))
    reset_settings()
    with TestClient(create_app(), headers={"User-Agent": BROWSER}) as client:
        yield client, key


def _delivery_of(address: str, issue_id: int) -> int:
    with transaction() as session:
        return session.scalars(
            select(Delivery.id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == address, Delivery.issue_id == issue_id)
        ).one()


def test_each_variants_readers_are_counted_apart_and_equal_a_recount(
    db: Session, week: dict[str, Any], reader_client: tuple[TestClient, Any]
) -> None:
    client, key = reader_client
    issue_id = week["issue_id"]
    with transaction() as session:
        assert start_send(session, issue_id)
    run_until_done(issue_id, worker_id="test:1")
    with transaction() as session:
        # An hour ago: an open seconds after the send is a mail scanner's prefetch (machines.py).
        backdate_deliveries(session, issue_id, by=timedelta(hours=1))
    mail = {address: body(m, "html") or "" for address, m in _by_reader().items()}

    # dev@ (Developer Tools) opens twice and clicks; video@ (Video) opens; all@ (no topics:
    # the whole issue) opens and clicks.
    for address, clicks in (
        ("dev@example.com", 1),
        ("video@example.com", 0),
        ("all@example.com", 2),
    ):
        for _ in range(2):
            assert client.get(_pixel(mail[address])).status_code == 200
        for link in _clicks(mail[address])[:clicks]:
            assert client.get(link, follow_redirects=False).status_code in (302, 303)
    # quiet@ turned tracking off: their copy has no pixel and no tracked link.
    assert "/o/" not in mail["quiet@example.com"] and not _clicks(mail["quiet@example.com"])
    # SendGrid says dev@ and fin@ (Finance) got theirs, twice (it posts at least once).
    now = int(datetime.now(UTC).timestamp())
    events = [
        {
            "email": address,
            "timestamp": now,
            "event": "delivered",
            "sg_event_id": f"delivered-{address}",
            "delivery_id": str(_delivery_of(address, issue_id)),
            "issue_id": str(issue_id),
        }
        for address in ("dev@example.com", "fin@example.com")
    ]
    for _ in range(2):
        assert client.post("/webhooks/sendgrid", **signed(key, events)).status_code == 200

    agrees(issue_id)  # every figure, the per-variant ones too, equals a recount
    with transaction() as session:
        numbers = stats.issue_stats(session, issue_id)
    rows = {", ".join(r["topics"]) or "whole": r for r in numbers["by_topics"]}
    assert set(rows) == {"Developer Tools", "Video", "Finance, Video", "Finance", "whole"}
    dev, video, fin, whole = rows["Developer Tools"], rows["Video"], rows["Finance"], rows["whole"]
    assert (dev["sent"], dev["delivered"], dev["opens_unique"], dev["clicks_unique"]) == (
        1,
        1,
        1,
        1,
    )
    assert dev["open_rate"] == 1.0 and dev["matchups"] == 1 and dev["subject"]
    # video@ and quiet@ both read Video: two sent, one counted open (quiet@ is untracked).
    assert (video["sent"], video["opens_unique"], video["clicks_unique"]) == (2, 1, 0)
    assert video["open_rate"] == 0.5
    assert (fin["sent"], fin["delivered"], fin["opens_unique"]) == (1, 1, 0)
    assert fin["open_rate"] == 0.0  # of those delivered
    assert rows["Finance, Video"]["sent"] == 1
    # The whole issue: all@ and every@ (topics that take in every matchup).
    assert (whole["sent"], whole["opens_unique"], whole["clicks_unique"]) == (2, 1, 1)
    assert whole["mask"] is None and whole["topics"] == []
    assert sum(r["sent"] for r in rows.values()) == numbers["sent"]
    assert sum(r["opens_unique"] for r in rows.values()) == numbers["opens_unique"]

    # A figure gone wrong (a bug, an edit by hand): the check names it, the repair rebuilds
    # every figure, the per-variant ones too, from the events.
    with transaction() as session:
        session.execute(
            update(TrackingRollup)
            .where(TrackingRollup.issue_id == issue_id, TrackingRollup.kind.like("variant:%"))
            .values(n=TrackingRollup.n + 5)
        )
    broken = check_cli(issue_id)
    assert broken.exit_code == 1 and ":opened:h: kept 6, recounted 1" in broken.output
    assert check_cli(issue_id, "--repair").exit_code == 0
    agrees(issue_id)
    with transaction() as session:
        assert stats.issue_stats(session, issue_id)["by_topics"] == numbers["by_topics"]

    # The CLI and the API say the same.
    result = cli("stats", str(issue_id))
    assert result.exit_code == 0, result.output
    assert "by the topics readers chose" in result.output
    assert "Developer Tools: sent 1, opened 1 (100.0%), clicked 1 (100.0%)" in result.output
    assert "the whole issue: sent 2, opened 1 (50.0%)" in result.output
    with transaction() as session:
        create_user(session, EDITOR, PASSWORD, Role.EDITOR)
    sign_in(client, EDITOR)
    with transaction() as session:
        token = issue_api_token(session, find(session, EDITOR))
    api = client.get(
        f"/api/v1/issues/{issue_id}/stats", headers={"Authorization": f"Bearer {token}"}
    )
    assert api.status_code == 200 and api.json()["by_topics"] == json.loads(
        json.dumps(numbers["by_topics"])
    )
    page = client.get(f"/admin/issues/{issue_id}/stats")
    assert page.status_code == 200
    table = re.search(r'<table[^>]*id="by-topics".*?</table>', page.text, re.S)
    assert table is not None
    cells = [
        [
            unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)
        ]
        for tr in re.findall(r"<tr>(.*?)</tr>", table[0], re.S)[1:]
    ]
    by_name = {row[0]: row for row in cells}
    assert by_name["Developer Tools"][2:5] == ["1", "1 (100.0%)", "1 (100.0%)"]
    assert by_name["Video"][2:4] == ["2", "1 (50.0%)"]
    assert by_name["The whole issue (no topics, or every matchup in theirs)"][2] == "2"


def test_an_issue_nobody_chose_topics_for_has_no_rows(
    db: Session, reader_client: tuple[TestClient, Any]
) -> None:
    from tests.tracking.conftest import build_world

    world = build_world(db, readers=2)
    client, _ = reader_client
    assert client.get(f"/o/{world.token(0)}.gif").status_code == 200
    with transaction() as session:
        assert stats.issue_stats(session, world.issue_id)["by_topics"] == []
    agrees(world.issue_id)
