"""CSV import as real tools export it: exact counts, line numbers and reasons; nothing of an
invalid row written; people who left never come back through an import."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.people import erasure
from subscribers import importer, service
from subscribers.models import Subscriber
from tests.subscribers.factories import active_subscriber
from tests.subscribers.helpers import cli, client, confirmation_link, outbox, path_of

# Excel "CSV UTF-8" in a semicolon locale, hand-edited: BOM, CRLF, the email column third and
# spelled "E-Mail Address", extra columns, quoted fields holding ; and "" and a line break,
# blank and empty rows, a duplicate differing in case and spaces, a line in Windows-1252 (what
# Excel's plain "CSV" saves), and a line that is neither UTF-8 nor Windows-1252.
MESSY = (
    b'\xef\xbb\xbfCompany;"First Name";"E-Mail Address";LAST NAME;Notes\r\n'  # 1
    b"ACME;Ann;ann@example.com;Lee;vip\r\n"  # 2 imported
    b"\r\n"  # 3 blank
    b'"Globex; Inc.";"Bo";"  BO@Example.com ";"Ng";"said ""hi"""\r\n'  # 4 imported
    b";Cy;not-an-email;;\r\n"  # 5 invalid
    b";Di;;;\r\n"  # 6 invalid: missing
    b";Ann again; ANN@EXAMPLE.COM ;;\r\n"  # 7 duplicate
    b'"Multi";"Ed";"ed@example.com";"Stone";"note line 1\r\n'  # 8 imported (spans 8-9)
    b'note line 2"\r\n'  # 9
    b";Fi;fi@example.com;;\r\n"  # 10 unsubscribed before: skipped
    b";Gil;gil@example.com;;\r\n"  # 11 already on the list, same name: skipped
    b";Hana;hana@example.com;New;\r\n"  # 12 already on the list, new name: updated
    b";Ivo;ivo@bad..example.com;;\r\n"  # 13 invalid
    b";;;;\r\n"  # 14 empty row
    b";Jo;jo@example.com\r\n"  # 15 imported (short row)
    b";K\xe9vin;kevin@example.com;;\r\n"  # 16 imported: Windows-1252, "Kévin"
    b";X\x81y;xy@example.com;;\r\n"  # 17 invalid: 0x81 is neither UTF-8 nor Windows-1252
)


def _arrange_existing(db: Session) -> None:
    active_subscriber(db, "gil@example.com", "Gil")
    active_subscriber(db, "hana@example.com", "Hana Old")
    service.unsubscribe(db, active_subscriber(db, "fi@example.com", "Fi"))
    db.commit()


def _people(db: Session) -> dict[str, tuple[str, str]]:
    db.expire_all()
    return {s.email: (s.name, s.status.value) for s in db.scalars(select(Subscriber))}


@pytest.mark.parametrize("batch_rows", [5000, 2])
def test_messy_csv_gives_exact_counts_and_line_numbers(
    db: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_rows: int
) -> None:
    # Batches of two put the duplicate in a later batch than its first occurrence.
    monkeypatch.setattr(importer, "BATCH_ROWS", batch_rows)
    _arrange_existing(db)
    path = tmp_path / "export.csv"
    path.write_bytes(MESSY)
    result = cli("subscribers", "import", str(path), "--json")
    assert result.exit_code == 1, result.output  # some rows were refused
    report = json.loads(result.stdout)
    assert (report["imported"], report["updated"], report["skipped"]) == (5, 1, 3)
    assert report["skipped_by_reason"] == {
        "duplicate": 1,
        "suppressed": 1,
        "unchanged": 1,
        "consented since": 0,
    }
    invalid = [(i["line"], i["value"]) for i in report["invalid"]]
    assert invalid == [
        (5, "not-an-email"),
        (6, ";Di;;;"),
        (13, "ivo@bad..example.com"),
        (17, "xy@example.com"),
    ]
    reasons = [i["reason"] for i in report["invalid"]]
    assert "@-sign" in reasons[0]
    assert reasons[1] == "missing email address"
    assert "period" in reasons[2]
    assert "UTF-8" in reasons[3]

    people = _people(db)
    assert people == {
        "ann@example.com": ("Ann Lee", "active"),
        "bo@example.com": ("Bo Ng", "active"),
        "ed@example.com": ("Ed Stone", "active"),
        "jo@example.com": ("Jo", "active"),
        "kevin@example.com": ("Kévin", "active"),
        "fi@example.com": ("Fi", "unsubscribed"),
        "gil@example.com": ("Gil", "active"),
        "hana@example.com": ("Hana New", "active"),
    }
    # Again, with the same duplicate: the first occurrence still wins, nothing is "updated".
    again = json.loads(cli("subscribers", "import", str(path), "--json").stdout)
    assert (again["imported"], again["updated"]) == (0, 0)
    assert again["skipped_by_reason"] == {
        "duplicate": 1,
        "suppressed": 1,
        "unchanged": 7,
        "consented since": 0,
    }
    assert _people(db) == people

    imported = db.scalars(select(Subscriber).where(Subscriber.email == "ann@example.com")).one()
    assert imported.consent_method == "import" and imported.consent_at is not None
    assert imported.source == "import:export.csv"


def test_the_report_gives_every_outcome_its_reason_and_lines(db: Session, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(MESSY)
    report = importer.import_csv(path)
    assert report.accounted() == 13  # every non-blank data row of MESSY, once
    assert report.to_json()["outcomes"] == [
        {
            "outcome": "invalid",
            "reason": "An email address must have an @-sign.",
            "count": 1,
            "lines": [5],
            "lines_not_listed": 0,
        },
        {
            "outcome": "invalid",
            "reason": "missing email address",
            "count": 1,
            "lines": [6],
            "lines_not_listed": 0,
        },
        {
            "outcome": "invalid",
            "reason": "An email address cannot have two periods in a row.",
            "count": 1,
            "lines": [13],
            "lines_not_listed": 0,
        },
        {
            "outcome": "invalid",
            "reason": "neither UTF-8 nor Windows-1252 text (save the file as CSV UTF-8)",
            "count": 1,
            "lines": [17],
            "lines_not_listed": 0,
        },
        {
            "outcome": "skipped",
            "reason": "duplicate",
            "count": 1,
            "lines": [7],
            "lines_not_listed": 0,
        },
        {
            "outcome": "imported",
            "reason": "active",
            "count": 8,
            "lines": [2, 4, 8, 10, 11, 12, 15, 16],
            "lines_not_listed": 0,
        },
    ]
    again = importer.import_csv(path)
    assert again.accounted() == 13
    by_key = {(o["outcome"], o["reason"]): o for o in again.to_json()["outcomes"]}
    assert by_key[("skipped", "unchanged")]["lines"] == [2, 4, 8, 10, 11, 12, 15, 16]
    assert by_key[("skipped", "duplicate")]["lines"] == [7]


def test_a_long_report_counts_every_row_but_lists_a_bounded_sample(
    db: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "MAX_LINES_LISTED", 3)
    monkeypatch.setattr(importer, "BATCH_ROWS", 2)
    path = tmp_path / "many.csv"
    path.write_text(
        "email,status\n"
        + "".join(f"a{i}@example.com,active\n" for i in range(5))
        + "".join(f"u{i}@example.com,unsubscribed\n" for i in range(4))
        + "".join(f"bad{i}\n" for i in range(4)),
        encoding="utf-8",
    )
    outcomes = {
        (o["outcome"], o["reason"]): o for o in importer.import_csv(path).to_json()["outcomes"]
    }
    active = outcomes[("imported", "active")]
    assert (active["count"], active["lines"], active["lines_not_listed"]) == (5, [2, 3, 4], 2)
    left = outcomes[("kept_out", 'unsubscribed: status "unsubscribed"')]
    assert (left["count"], left["lines"], left["lines_not_listed"]) == (4, [7, 8, 9], 1)
    bad = outcomes[("invalid", "An email address must have an @-sign.")]
    assert (bad["count"], bad["lines"], bad["lines_not_listed"]) == (4, [11, 12, 13], 1)


def test_human_report_names_every_invalid_row(db: Session, tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(MESSY)
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert (
        "8 imported, 0 updated, 0 kept out because they left, 1 skipped (1 duplicate), 4 invalid"
        in result.stdout
    )
    for line in (5, 6, 13, 17):
        assert f"export.csv:{line}:" in result.stderr
    assert "importing" not in result.stderr  # no progress bar when not on a terminal


def test_suppressed_addresses_survive_reimport(db: Session, tmp_path: Path) -> None:
    for email in ("un@example.com", "bounce@example.com", "spam@example.com", "gone@example.com"):
        active_subscriber(db, email, "Before")
    ids = {s.email: s.id for s in db.scalars(select(Subscriber))}
    service.unsubscribe(db, ids["un@example.com"])
    service.mark_bounced(db, ids["bounce@example.com"], "550 no such user")
    service.mark_complained(db, ids["spam@example.com"], "abuse")
    erasure.erase(db, ids["gone@example.com"])
    db.commit()
    path = tmp_path / "old-list.csv"
    path.write_text(
        "email,name\nUN@example.com,After\nbounce@example.com,After\n"
        " spam@EXAMPLE.com,After\ngone@example.com,After\n",
        encoding="utf-8",
    )
    for flag in ([], ["--require-confirmation"]):
        result = cli("subscribers", "import", str(path), "--json", *flag)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["skipped_by_reason"]["suppressed"] == 4
        assert report["imported"] == report["updated"] == 0
    assert _people(db) == {
        "un@example.com": ("Before", "unsubscribed"),
        "bounce@example.com": ("Before", "bounced"),
        "spam@example.com": ("Before", "complained"),
    }
    assert outbox() == []


def test_require_confirmation_imports_pending_and_mails_each(db: Session, tmp_path: Path) -> None:
    path = tmp_path / "mailchimp.csv"
    path.write_text(
        "Email Address,First Name,Last Name,MEMBER_RATING\n"
        "lu@example.com,Lu,,2\nmo@example.com,Mo,Ra,5\n",
        encoding="utf-8",
    )
    result = cli("subscribers", "import", str(path), "--require-confirmation", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["confirmations_sent"] == 2
    assert _people(db) == {
        "lu@example.com": ("Lu", "pending"),
        "mo@example.com": ("Mo Ra", "pending"),
    }
    [mail] = [m for m in outbox() if "mo@example.com" in str(m["To"])]
    web = client()
    link = path_of(confirmation_link(mail))
    web.get(link)
    assert _people(db)["mo@example.com"][1] == "pending"
    assert web.post(link).status_code == 200
    assert _people(db)["mo@example.com"][1] == "active"


def test_a_bare_list_of_addresses_needs_no_header(db: Session, tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("nia@example.com\n\nOLA@example.com\nnope\n", encoding="utf-8")
    result = cli("subscribers", "import", str(path), "--json")
    report = json.loads(result.stdout)
    assert report["imported"] == 2
    assert [(i["line"], i["value"]) for i in report["invalid"]] == [(4, "nope")]
    assert set(_people(db)) == {"nia@example.com", "ola@example.com"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbfname,phone\nAnn,123\n", "no email column"),
    ],
)
def test_a_file_without_an_email_column_is_refused_whole(
    db: Session, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(content)
    result = cli("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert message in result.stderr and "people.csv" in result.stderr
    assert _people(db) == {}
    missing = cli("subscribers", "import", str(tmp_path / "absent.csv"))
    assert missing.exit_code == 1 and "no such file" in missing.stderr


def test_export_list_and_search(db: Session, tmp_path: Path) -> None:
    active_subscriber(db, "pat@example.com", "Pat Quill")
    active_subscriber(db, "rob@example.com", '=HYPERLINK("http://evil")')
    service.unsubscribe(db, active_subscriber(db, "sue@example.com", "Sue"))
    db.commit()
    out = tmp_path / "list.csv"
    assert cli("subscribers", "export", "-o", str(out)).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [(r["email"], r["name"], r["status"]) for r in rows] == [
        ("pat@example.com", "Pat Quill", "active"),
        # A spreadsheet shows it as text instead of running it.
        ("rob@example.com", '\'=HYPERLINK("http://evil")', "active"),
        ("sue@example.com", "Sue", "unsubscribed"),
    ]
    assert rows[0]["consent_method"] == "admin"

    listed = json.loads(cli("subscribers", "list", "--json").stdout)
    assert {"email", "name", "status"} <= set(listed[0])
    assert len(listed) == 3
    found = json.loads(cli("subscribers", "list", "--search", "QUILL", "--json").stdout)
    assert [p["email"] for p in found] == ["pat@example.com"]
    left = json.loads(cli("subscribers", "list", "--status", "unsubscribed", "--json").stdout)
    assert [p["email"] for p in left] == ["sue@example.com"]
    assert cli("subscribers", "list", "--status", "gone").exit_code != 0

    # Re-importing the export changes nothing and revives nobody.
    report = json.loads(cli("subscribers", "import", str(out), "--json").stdout)
    assert report["imported"] == report["updated"] == 0 and report["skipped"] == 2
    assert report["format"] == "newsletter"
    assert report["kept_out_by_reason"] == {'unsubscribed: status "unsubscribed"': 1}
    assert _people(db)["rob@example.com"][0] == '=HYPERLINK("http://evil")'

    shown = cli("subscribers", "show", "pat@example.com", "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["name"] == "Pat Quill"
    assert cli("subscribers", "show", "who@example.com").exit_code == 1
    assert cli("subscribers", "unsubscribe", "who@example.com").exit_code == 1
