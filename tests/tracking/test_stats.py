"""The numbers editors read: `issue_stats` and `newsletter stats [ID] [--json]`."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.sending.models import Delivery, DeliveryStatus
from newsletter.tracking import service
from newsletter.tracking.events import SendGridEvents
from newsletter.tracking.ingest import ingest_sendgrid
from newsletter.tracking.stats import issue_stats
from tests.tracking.conftest import SENT_AT, World, build_world

AGENT = "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/125.0"


def sendgrid(
    world: World, index: int, name: str, event_id: str, **extra: object
) -> dict[str, object]:
    return {
        "event": name,
        "sg_event_id": event_id,
        "delivery_id": str(world.deliveries[index]),
        "timestamp": int((SENT_AT + timedelta(minutes=1)).timestamp()),
        **extra,
    }


def activity(db: Session, world: World) -> None:
    """Three readers: 0 opens twice and clicks, 1 is seen only by Apple's proxy, 2 bounces."""
    d0, d1, d2 = world.deliveries
    db.execute(update(Delivery).where(Delivery.id == d2).values(status=DeliveryStatus.FAILED))
    ingest_sendgrid(
        db,
        [
            sendgrid(world, 0, "delivered", "a"),
            sendgrid(world, 1, "delivered", "b"),
            sendgrid(world, 1, "open", "c", sg_machine_open=True),
            sendgrid(world, 2, "bounce", "d", type="bounce"),
            sendgrid(world, 0, "spamreport", "e"),
        ],
    )
    at = SENT_AT + timedelta(hours=2, minutes=5)
    service.record_open(db, d0, user_agent=AGENT, client_ip="203.0.113.9", now=at)
    service.record_open(
        db, d0, user_agent=AGENT, client_ip="203.0.113.9", now=at + timedelta(hours=30)
    )
    service.record_open(db, d1, user_agent="Mozilla/5.0", client_ip="17.58.1.1", now=at)
    service.record_click(db, d0, "m1", user_agent=AGENT, client_ip=None, now=at)
    service.record_click(db, d0, "m1", user_agent=AGENT, client_ip=None, now=at)
    service.record_click(db, d1, "m0", user_agent="Barracuda", client_ip=None, now=at)
    service.record_vote(
        db, d0, world.slugs[1], 1, user_agent=AGENT, client_ip=None, confirmed=False, now=at
    )
    service.record_vote(
        db, d1, world.slugs[1], 0, user_agent="Proofpoint", client_ip=None, confirmed=False, now=at
    )
    service.record_unsubscribe(db, d0, now=at)
    db.commit()


def test_issue_stats_count_people_once_and_keep_machines_apart(db: Session, world: World) -> None:
    activity(db, world)
    numbers = issue_stats(db, world.issue_id)
    assert {k: numbers[k] for k in ("recipients", "sent", "failed", "uncertain")} == {
        "recipients": 3,
        "sent": 2,
        "failed": 1,
        "uncertain": 0,
    }
    assert numbers["delivered"] == 2
    assert numbers["bounced"] == 1
    assert numbers["opens_unique"] == 1  # reader 0, twice; reader 1 only through Apple's proxy
    assert numbers["opens_machine"] == 1
    assert numbers["open_rate"] == 0.5
    assert numbers["clicks_unique"] == 1
    assert numbers["unsubscribes"] == 1
    assert numbers["complaints"] == 1
    first, second = numbers["matchups"]
    assert first == {
        "slug": world.slugs[0],
        "title": "Cursor vs Windsurf",
        "clicks_unique": 0,
        "votes": [
            {"tool": 0, "name": "Cursor", "votes": 0},
            {"tool": 1, "name": "Windsurf", "votes": 0},
        ],
        "community_pct": None,
    }
    assert second["clicks_unique"] == 1
    assert [v["votes"] for v in second["votes"]] == [0, 1]
    assert second["community_pct"] == 0
    assert {link["key"]: link["clicks_unique"] for link in numbers["links"]} == {
        "m0": 0,
        "m1": 1,
        "site": 0,
    }
    # The hours run from the first person's open to the last: one open, one hour.
    assert numbers["opens_by_hour"] == [1]
    assert numbers["opens_first_hour"] == (SENT_AT + timedelta(hours=2)).replace(minute=0)
    assert numbers["click_rate"] == 0.5 and numbers["click_to_open_rate"] == 1.0


def test_stats_cli_json_and_text(db: Session, world: World) -> None:
    activity(db, world)
    runner = CliRunner()
    result = runner.invoke(app, ["stats", str(world.issue_id), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in (
        "recipients",
        "sent",
        "failed",
        "uncertain",
        "delivered",
        "bounced",
        "opens_unique",
        "opens_machine",
        "open_rate",
        "clicks_unique",
        "unsubscribes",
        "complaints",
        "matchups",
    ):
        assert key in data
    assert data["opens_unique"] == 1
    # No id: the issue whose send started last.
    latest = runner.invoke(app, ["stats", "--json"])
    assert latest.exit_code == 0 and json.loads(latest.stdout)["issue_id"] == world.issue_id
    text = runner.invoke(app, ["stats", str(world.issue_id)])
    assert text.exit_code == 0
    assert "opens 1 people (50.0%)" in text.stdout and world.slugs[1] in text.stdout


def test_stats_refuses_an_unknown_issue_and_an_empty_database(db: Session) -> None:
    runner = CliRunner()
    empty = runner.invoke(app, ["stats"])
    assert empty.exit_code != 0 and "no issue has been sent" in empty.output
    build_world(db)
    missing = runner.invoke(app, ["stats", "4242", "--json"])
    assert missing.exit_code != 0 and "no issue with id 4242" in missing.output


def test_the_event_mapping_names_every_documented_sendgrid_type() -> None:
    documented = {
        "processed",
        "delivered",
        "deferred",
        "bounce",
        "dropped",
        "open",
        "click",
        "spamreport",
        "unsubscribe",
        "group_unsubscribe",
        "group_resubscribe",
    }
    assert documented <= set(SendGridEvents.EVENT_TYPES)
