"""The editor's numbers page as a person reads it (real Chromium), and the ids it refuses."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.accounts.service import find, issue_api_token
from newsletter.cli import app as cli
from newsletter.db import transaction
from newsletter.issues.models import Issue, IssueStatus
from newsletter.sending.models import Delivery, DeliveryStatus
from newsletter.tracking import service
from tests.tracking.conftest import BROWSER, SENT_AT, World, build_world
from tests.web.conftest import EDITOR
from tests.web.test_browser import check, page, server, sign_in  # noqa: F401 - fixtures


def readers_act(db: Session, world: World) -> None:
    """Six readers: all open (one twice, one 20 hours after the others), four click, three vote, one leaves; and last week's
    issue, opened by two of them, for the trend."""
    at = SENT_AT + timedelta(hours=3)
    for i, later in ((0, 0), (1, 0), (2, 0), (3, 0), (4, 0), (5, 20), (0, 30)):
        service.record_open(
            db,
            world.deliveries[i],
            user_agent=BROWSER,
            client_ip=None,
            now=at + timedelta(hours=later),
        )
    for i, link in ((0, "m0"), (1, "m1"), (2, "m1"), (3, "site")):
        service.record_click(
            db, world.deliveries[i], link, user_agent=BROWSER, client_ip=None, now=at
        )
    for i in range(3):
        service.record_vote(
            db,
            world.deliveries[i],
            world.slugs[1],
            i % 2,
            user_agent=BROWSER,
            client_ip=None,
            confirmed=True,
            now=at,
        )
    service.record_unsubscribe(db, world.deliveries[5], now=at)
    earlier = Issue(
        week="2026-W09",
        status=IssueStatus.SENT,
        cutoff_at=SENT_AT - timedelta(days=8),
        send_started_at=SENT_AT - timedelta(days=7),
        sent_at=SENT_AT - timedelta(days=7),
    )
    db.add(earlier)
    db.flush()
    ids = db.execute(
        insert(Delivery).returning(Delivery.id),
        [
            {
                "issue_id": earlier.id,
                "subscriber_id": s,
                "status": DeliveryStatus.SENT,
                "sent_at": SENT_AT - timedelta(days=7),
            }
            for s in world.subscribers[:6]
        ],
    ).scalars()
    for delivery_id in list(ids)[:2]:
        service.record_open(
            db, delivery_id, user_agent=BROWSER, client_ip=None, now=SENT_AT - timedelta(days=6)
        )
    db.commit()


@pytest.mark.browser
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_numbers_page_reads_as_a_person_needs_it(
    server: str,  # noqa: F811
    page: Any,  # noqa: F811
    artifacts: Path,
    staff: None,
    db: Session,
) -> None:
    world = build_world(db, readers=6)
    readers_act(db, world)
    sign_in(page, server, EDITOR)
    page.goto(f"{server}/admin/issues/{world.issue_id}/stats")
    facts = page.locator("dl.facts").inner_text()
    assert "Unique opens\n6 (100.0%)" in facts.replace("\t", "\n")
    assert "click-through 66.7% of delivered" in facts and "click-to-open 66.7%" in facts
    assert "Unsubscribes\n1" in facts.replace("\t", "\n")
    # Matchups by their titles, not slugs.
    headings = page.locator("h3").all_inner_texts()
    assert headings == ["Cursor vs Windsurf (0 votes)", "Claude vs GPT (3 votes)"]
    bars = page.locator("ul.bars").first.inner_text()
    assert "Claude vs GPT" in bars and "claude-vs-gpt" not in bars
    # The per-link table, most clicked first.
    rows = page.locator("table[aria-labelledby=links-h] tbody tr").all_inner_texts()
    assert [r.split("\t")[0] for r in rows] == ["Claude vs GPT", "Cursor vs Windsurf", "Site"]
    assert rows[0].split("\t")[-1].strip() == "2"
    # The time axis runs from the first hour with a first open to the last (21 hours): a
    # second open 30 hours on is no first open.
    caption = page.locator("#opens-h + figure figcaption").inner_text()
    first = SENT_AT + timedelta(hours=3)
    last = first + timedelta(hours=20)
    assert f"{first:%a %d %b %H:00} UTC to {last:%a %d %b %H:00} UTC" in caption
    assert page.locator("#opens-h + figure svg rect").count() == 2
    # The trend: last week's issue and this one, oldest first, in a table and a chart.
    trend = page.locator("table[aria-labelledby=trend-h] tbody tr").all_inner_texts()
    assert [r.split("\t")[0] for r in trend] == ["2026-W09", "2026-W10"]
    assert trend[0].split("\t")[2] == "33.3%" and trend[1].split("\t")[2] == "100.0%"
    assert page.locator("#trend-h + figure polyline").count() == 3
    check(page, artifacts, "editor-stats")


@pytest.mark.parametrize("issue", [str(2**63), "-1", "0", "abc", "%00", "99999"])
def test_numbers_for_an_issue_that_cannot_exist_are_a_404_not_a_crash(
    app: Any, editor: TestClient, issue: str
) -> None:
    with transaction() as session:
        token = issue_api_token(session, find(session, EDITOR))
    with TestClient(app, raise_server_exceptions=False) as api:
        answer = api.get(
            f"/api/v1/issues/{issue}/stats", headers={"Authorization": f"Bearer {token}"}
        )
    assert answer.status_code in (400, 404, 422), (issue, answer.status_code)
    page_answer = editor.get(f"/admin/issues/{issue}/stats")
    assert page_answer.status_code in (400, 404, 422), (issue, page_answer.status_code)
    assert "Traceback" not in page_answer.text and "Traceback" not in answer.text


def test_the_api_gives_the_same_numbers_as_the_cli(
    app: Any, editor: TestClient, db: Session
) -> None:
    world = build_world(db, readers=6)
    readers_act(db, world)
    with transaction() as session:
        token = issue_api_token(session, find(session, EDITOR))
    api = editor.get(
        f"/api/v1/issues/{world.issue_id}/stats", headers={"Authorization": f"Bearer {token}"}
    ).json()
    result = CliRunner().invoke(cli, ["stats", str(world.issue_id), "--json"])
    assert json.loads(result.stdout)["opens_unique"] == api["opens_unique"] == 6
    assert api["click_rate"] == round(4 / 6, 4) and api["unsubscribes"] == 1
    assert [t["week"] for t in api["trend"]] == ["2026-W09", "2026-W10"]
    assert [m["title"] for m in api["matchups"]] == ["Cursor vs Windsurf", "Claude vs GPT"]
    text = CliRunner().invoke(cli, ["stats", str(world.issue_id)]).stdout
    assert "click-through 66.7%" in text and "Claude vs GPT" in text and "2026-W09" in text
