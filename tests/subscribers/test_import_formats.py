"""Moving a list from another tool: each tool's export, recognised from its header, every status
word and flag read, and nobody who left made active, or mailed by the next send."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.cli import app as cli_app
from newsletter.people import erasure
from newsletter.people.export import personal_data
from subscribers import repository
from subscribers.addresses import address_hash
from subscribers.models import Subscriber, SubscriberStatus, SubscriberTag, Suppression
from tests.sending.conftest import make_issue
from tests.subscribers.exports import (
    ALL,
    KIT,
    MAILCHIMP_SUBSCRIBED,
    MAILCHIMP_UNSUBSCRIBED,
    Export,
    _mc,
)
from tests.subscribers.factories import active_subscriber
from tests.subscribers.helpers import cli, outbox

LEFT = {"unsubscribed", "bounced", "complained"}


def _write(tmp_path: Path, export: Export) -> Path:
    path = tmp_path / export.filename
    path.write_bytes(export.content())
    return path


def _people(db: Session) -> dict[str, Subscriber]:
    db.expire_all()
    return {s.email: s for s in db.scalars(select(Subscriber))}


def _recipients_of_next_send(db: Session) -> set[str]:
    """A real issue, sent through the ledger to the outbox: who got mail."""
    before = {str(m["To"]) for m in outbox()}
    issue_id = make_issue(db)
    result = cli("issue", "send", str(issue_id), "--json")
    assert result.exit_code == 0, result.output
    return {str(m["To"]).rsplit("<", 1)[-1].rstrip(">").lower() for m in outbox()} - before


@pytest.mark.parametrize("export", ALL, ids=[f"{e.tool}:{e.filename}" for e in ALL])
def test_each_tools_export_keeps_whoever_left_out_of_the_next_send(
    db: Session, tmp_path: Path, export: Export
) -> None:
    path = _write(tmp_path, export)
    result = cli("subscribers", "import", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == export.tool
    expected = export.expected()
    people = _people(db)
    for email, status in expected.items():
        if status is None:
            assert email not in people
            continue
        assert people[email].status.value == status, (email, report)
    left = {e for e, s in expected.items() if s in LEFT}
    pending = {e for e, s in expected.items() if s == "pending"}
    active = {e for e, s in expected.items() if s == "active"}
    assert report["imported"] == len(active) + len(pending)
    assert report["pending"] == len(pending)
    assert report["kept_out"] == len(left)
    assert report["invalid"] == []
    # Everyone who left is on the suppression list, the tool and the reason named.
    suppressions = {s.email_hash: s for s in db.scalars(select(Suppression))}
    for email in left:
        entry = suppressions[address_hash(email)]
        assert export.filename in entry.detail
        assert entry.reason in (
            people[email].status.value,
            "spammy",
            "removed",
            "blocklisted",
            "disabled",
            "deleted",
        )
        assert people[email].consent_method == "import"
    assert {address_hash(e) for e in active | pending}.isdisjoint(suppressions)
    for email in active:
        assert people[email].consent_method == "import"
        assert people[email].source.startswith(f"import:{export.tool}:")
        assert people[email].consent_at is not None and people[email].confirmed_at is not None
    for email in pending:
        # Never confirmed there: pending here, no consent recorded, no confirmation mailed.
        assert people[email].consent_at is None and people[email].confirm_sent_at is None
    assert outbox() == []  # the import itself mails nobody
    for email, tags in export.tags.items():
        assert repository.tags_of(db, people[email].id) == sorted(tags)
    for email, name in export.names.items():
        assert people[email].name == name

    assert _recipients_of_next_send(db) == active


def test_a_mailchimp_opt_in_keeps_its_own_consent_time_and_address(
    db: Session, tmp_path: Path
) -> None:
    cli("subscribers", "import", str(_write(tmp_path, MAILCHIMP_SUBSCRIBED)))
    ann = _people(db)["ann@mc.example"]
    # CONFIRM_TIME is when they gave consent there; CONFIRM_IP from where.
    assert ann.consent_at == datetime(2023, 1, 5, 10, 2, 11, tzinfo=UTC)
    assert ann.confirmed_at == ann.consent_at
    assert ann.consent_ip == "203.0.113.5"
    assert ann.source == "import:mailchimp:subscribed_members_export_1a2b.csv"
    data = personal_data(db, ann)
    assert data["tags"] == ["Early bird", "VIP"]


def test_the_unsubscribed_file_stops_someone_already_on_the_list_but_not_who_came_back(
    db: Session, tmp_path: Path
) -> None:
    export = dataclasses.replace(
        MAILCHIMP_UNSUBSCRIBED,
        rows=[
            *MAILCHIMP_UNSUBSCRIBED.rows,
            (None, [*_mc("back@mc.example", "Back", ""), "2024-02-01 08:00:00", "", "", "", ""]),
        ],
    )
    consented = {
        # Una subscribed here before she left Mailchimp (2024-02-01): the export's word stands.
        "un@mc.example": datetime(2024, 1, 1, tzinfo=UTC),
        # Back confirmed here after leaving there: their own newer consent stands.
        "back@mc.example": datetime(2024, 6, 1, tzinfo=UTC),
        # No time in the file: we cannot tell who came first, so the leaving stands.
        "blank@mc.example": datetime(2024, 6, 1, tzinfo=UTC),
    }
    for email, at in consented.items():
        subscriber_id = active_subscriber(db, email)
        db.execute(
            Subscriber.__table__.update()
            .where(Subscriber.id == subscriber_id)
            .values(consent_at=at)
        )
    db.commit()
    result = cli("subscribers", "import", str(_write(tmp_path, export)), "--json")
    report = json.loads(result.stdout)
    people = _people(db)
    assert people["un@mc.example"].status == SubscriberStatus.UNSUBSCRIBED
    assert people["un@mc.example"].unsubscribed_at == datetime(2024, 2, 1, 8, tzinfo=UTC)
    assert people["blank@mc.example"].status == SubscriberStatus.UNSUBSCRIBED
    assert people["back@mc.example"].status == SubscriberStatus.ACTIVE
    assert report["marked_left"] == 2 and report["kept_out"] == 2
    reason = "unsubscribed: the Mailchimp unsubscribed file (UNSUB_TIME)"
    assert report["kept_out_by_reason"] == {reason: 2}
    [kept] = [o for o in report["outcomes"] if o["outcome"] == "kept_out"]
    assert (kept["reason"], kept["lines"]) == (reason, [2, 3])
    assert report["skipped_by_reason"]["consented since"] == 1
    assert report["skipped_by_reason"]["unchanged"] == 0
    [back] = [o for o in report["outcomes"] if o["outcome"] == "skipped"]
    assert back["reason"] == (
        "consented since: the file says they left, but they subscribed here after that; "
        "still subscribed"
    )
    assert back["lines"] == [4]
    assert repository.suppression_for(db, address_hash("un@mc.example")) is not None
    assert repository.suppression_for(db, address_hash("back@mc.example")) is None
    assert _recipients_of_next_send(db) == {"back@mc.example"}


def test_a_later_import_or_an_admin_cannot_bring_back_who_left_only_their_own_sign_up(
    db: Session, tmp_path: Path
) -> None:
    cli("subscribers", "import", str(_write(tmp_path, KIT)))
    # The same people in a plain "subscribed" list from somewhere else: nobody comes back.
    plain = tmp_path / "everyone.csv"
    plain.write_text("email\n" + "\n".join(KIT.expected()) + "\n", encoding="utf-8")
    report = json.loads(cli("subscribers", "import", str(plain), "--json").stdout)
    assert report["skipped_by_reason"]["suppressed"] == 3
    assert report["imported"] == report["updated"] == 0
    assert cli("subscribers", "add", "cancelled@kit.example").exit_code == 1
    people = _people(db)
    assert {e: people[e].status.value for e in KIT.expected()} == KIT.expected()
    # Their own sign-up sends them a confirmation, and only their click brings them back.
    from tests.subscribers.helpers import client, confirmation_link, path_of

    web = client()
    assert web.post("/api/subscribe", json={"email": "cancelled@kit.example"}).status_code < 300
    assert _people(db)["cancelled@kit.example"].status == SubscriberStatus.UNSUBSCRIBED
    [mail] = [m for m in outbox() if "cancelled@kit.example" in str(m["To"])]
    web.post(path_of(confirmation_link(mail)))
    assert _people(db)["cancelled@kit.example"].status == SubscriberStatus.ACTIVE


def test_dry_run_prints_the_full_report_and_writes_nothing(db: Session, tmp_path: Path) -> None:
    path = _write(tmp_path, KIT)
    dry = cli("subscribers", "import", str(path), "--dry-run", "--json", "--require-confirmation")
    assert dry.exit_code == 0, dry.output
    assert _people(db) == {} and db.scalars(select(Suppression)).all() == []
    assert outbox() == []
    real = cli("subscribers", "import", str(path), "--json")
    dry_report, real_report = json.loads(dry.stdout), json.loads(real.stdout)
    assert dry_report["dry_run"] is True and real_report["dry_run"] is False
    for key in ("kept_out", "kept_out_by_reason", "skipped_by_reason", "invalid"):
        assert dry_report[key] == real_report[key]
    assert dry_report["imported"] == real_report["imported"] == 3
    by_reason = {(o["outcome"], o["reason"]): o["lines"] for o in real_report["outcomes"]}
    assert by_reason[("kept_out", 'unsubscribed: status "cancelled"')] == [5]
    assert by_reason[("kept_out", 'bounced: status "bounced"')] == [6]
    assert by_reason[("kept_out", 'complained: status "complained"')] == [7]
    assert by_reason[("imported", "pending: never confirmed, sent nothing")] == [4]
    assert by_reason[("imported", "active")] == [2, 3]
    human = cli("subscribers", "import", str(path), "--dry-run")
    assert "dry run, nothing written" in human.stdout
    assert 'kept_out (bounced: status "bounced"): 1 — lines 6' in human.stdout
    assert "format: Kit / ConvertKit" in human.stdout


def test_format_and_columns_can_be_forced(db: Session, tmp_path: Path) -> None:
    # A hand-made sheet: German headers, a status column in Kit's words.
    path = tmp_path / "liste.csv"
    path.write_text(
        "Vorname;E-Post;Zustand;Schlagworte\nAl;al@x.example;active;a,b\nCa;ca@x.example;cancelled;\n",
        encoding="utf-8",
    )
    refused = cli("subscribers", "import", str(path))
    assert refused.exit_code == 1
    assert "'E-Post'" in refused.stderr and "--map email=" in refused.stderr
    assert _people(db) == {}
    result = cli(
        "subscribers",
        "import",
        str(path),
        "--format",
        "kit",
        "--json",
        "--map",
        "email=E-Post,first_name=Vorname",
        "--map",
        "status=Zustand,tags=Schlagworte",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["columns"] == {
        "email": "E-Post",
        "first_name": "Vorname",
        "status": "Zustand",
        "tags": "Schlagworte",
    }
    people = _people(db)
    assert (people["al@x.example"].name, people["al@x.example"].status.value) == ("Al", "active")
    assert people["ca@x.example"].status == SubscriberStatus.UNSUBSCRIBED
    assert repository.tags_of(db, people["al@x.example"].id) == ["a", "b"]
    for bad in (["--format", "hubspot"], ["--map", "colour=E-Post"], ["--map", "email=Nope"]):
        result = cli("subscribers", "import", str(path), *bad)
        assert result.exit_code == 1 and "error:" in result.stderr, bad
        assert "Traceback" not in result.output


def test_an_unknown_status_word_refuses_the_row_not_the_file(db: Session, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "email,status\nok@x.example,active\nodd@x.example,suspended\n", encoding="utf-8"
    )
    result = cli("subscribers", "import", str(path), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    [invalid] = report["invalid"]
    assert invalid["line"] == 3 and "'suspended'" in invalid["reason"]
    assert set(_people(db)) == {"ok@x.example"}


def test_tags_go_with_an_erased_person(db: Session, tmp_path: Path) -> None:
    cli("subscribers", "import", str(_write(tmp_path, MAILCHIMP_SUBSCRIBED)))
    ann = _people(db)["ann@mc.example"]
    erasure.erase(db, ann.id)
    db.commit()
    assert db.scalars(select(SubscriberTag)).all() == []


def test_import_is_a_subcommand_with_the_options_the_contract_names(db: Session) -> None:
    # (In process, Click hides the rest of the command line from the root callback, which
    # therefore looks for a database; a real `newsletter … --help` needs none, see
    # tests/foundation/test_init_cli.py.)
    from typer.testing import CliRunner

    help_text = CliRunner().invoke(cli_app, ["subscribers", "import", "--help"]).stdout
    for option in ("--format", "--map", "--dry-run", "--json"):
        assert option in help_text
