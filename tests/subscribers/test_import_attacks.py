"""Files built to break the importer, and the round trip of our own export: a clear error naming
what and where, no traceback, nothing half-written, and every address back exactly as it was."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from subscribers import csv_reading, repository, service
from subscribers.csv_reading import MAX_LINE_BYTES
from subscribers.models import Subscriber, SubscriberTag, Suppression
from tests.subscribers.factories import active_subscriber
from tests.subscribers.helpers import cli


def _count(db: Session) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(Subscriber)) or 0


def _import(path: Path, *args: str) -> tuple[int, Any, str]:
    result = cli("subscribers", "import", str(path), "--json", *args)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    report = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, report, result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # A header cell over the csv module's field limit (131,072 characters).
        (
            b"email," + b"x" * 200_000 + b"\nann@example.com,1\n",
            "line 1: the header cannot be read: field larger than field limit",
        ),
        # One endless line: never read into memory whole.
        (
            b"email" + b",x" * (MAX_LINE_BYTES // 2 + 10),
            "line 1: the header cannot be read: line longer than 1,048,576 bytes",
        ),
        (b"\xff\xfe\x00\x00e\x00\x00\x00", "UTF-32"),
        (
            "email,name\nann@example.com,Ann\n".encode("utf-16-le"),
            "UTF-16 text without a byte-order mark",
        ),
        (b"\n\n\r\n", "the file is empty"),
        (b"name,notes\nAnn,\x00\n", "no email column in the header (found 'name', 'notes')"),
    ],
    ids=[
        "header-over-csv-limit",
        "one-endless-line",
        "utf-32",
        "utf-16-no-bom",
        "blank",
        "no-email",
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole_with_what_and_where(
    db: Session, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    code, report, stderr = _import(path)
    assert code == 1 and report is None
    assert message in stderr and "bad.csv" in stderr
    assert _count(db) == 0


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_with_a_byte_order_mark_is_read(db: Session, tmp_path: Path, encoding: str) -> None:
    text = "Email Address\tFirst Name\r\nzoe@example.com\tZoë 😀\r\nbad\tX\r\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    path = tmp_path / "unicode.txt"
    path.write_bytes(data)
    _, report, _ = _import(path)
    assert report is not None and report["imported"] == 1
    assert [(i["line"], i["value"]) for i in report["invalid"]] == [(3, "bad")]
    assert service.find(db, "zoe@example.com").name  # type: ignore[union-attr] == "Zoë 😀"


def test_rows_with_nul_lone_surrogates_and_overlong_values_are_refused_alone(
    db: Session, tmp_path: Path
) -> None:
    long_line = "huge@example.com,H,active," + "t" * (MAX_LINE_BYTES + 5) + "\n"
    rows = [
        "email,name,status,tags\n",
        "ok@example.com,Ok,active,a\n",  # 2
        "n\x00ul@example.com,Nul,active,\n",  # 3 invalid
        "nulname@example.com,Nu\x00ll,active,t\x00ag\n",  # 4 imported, NUL gone
        "status@example.com,S,act\x00ive,\n",  # 5 invalid: unknown status
        f"{'a' * 400}@example.com,Long,active,\n",  # 6 invalid
        f"longname@example.com,{'n' * 300},active,\n",  # 7 invalid
        f"longtag@example.com,T,active,{'x' * 101}\n",  # 8 invalid
        f'manytags@example.com,T,active,"{",".join(str(i) for i in range(51))}"\n',  # 9 invalid
        long_line,  # 10 invalid: the line is skipped, not read whole
        'field@example.com,"' + "f" * 140_000 + '",active,\n',  # 11 invalid: over the csv limit
        "last@example.com,Last,active,\n",  # 12
    ]
    path = tmp_path / "attack.csv"
    path.write_bytes(
        "".join(rows).encode("utf-8")
        + "\ud800@x.example,Lone,active,\n".encode("utf-8", "surrogatepass")
    )
    code, report, _ = _import(path)
    assert code == 1 and report is not None
    invalid = {i["line"]: i["reason"] for i in report["invalid"]}
    assert sorted(invalid) == [3, 5, 6, 7, 8, 9, 10, 11, 13]
    assert "'act\\x00ive'" in invalid[5] or "act" in invalid[5]
    assert "longer than 200" in invalid[7]
    assert "tag longer than 100" in invalid[8]
    assert "more than 50 tags" in invalid[9]
    assert "longer than 1,048,576 bytes" in invalid[10]
    assert "field larger than field limit" in invalid[11]
    emails = set(db.scalars(select(Subscriber.email)))
    assert emails == {"ok@example.com", "nulname@example.com", "last@example.com"}
    assert service.find(db, "nulname@example.com").name  # type: ignore[union-attr] == "Nu ll"
    tags = set(db.scalars(select(SubscriberTag.name)))
    assert tags == {"a", "t ag"}
    assert all(len(v) <= 320 for v in (i["value"] for i in report["invalid"]))


def test_a_file_name_too_long_for_the_system_is_a_clear_error(db: Session, tmp_path: Path) -> None:
    result = cli("subscribers", "import", str(tmp_path / ("n" * 300 + ".csv")))
    assert result.exit_code == 1
    assert "File name too long" in result.stderr and "Traceback" not in result.output


def test_an_import_cut_by_a_refusal_writes_nothing_and_a_rerun_finishes_it(
    db: Session, tmp_path: Path
) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "email,status\na@example.com,active\nb@example.com,cancelled\n", encoding="utf-8"
    )
    code, _, stderr = _import(path, "--format", "nope")
    assert code == 1 and "unknown format 'nope'" in stderr
    assert _count(db) == 0
    code, report, _ = _import(path)
    assert code == 0 and report is not None and report["imported"] == 1
    code, again, _ = _import(path)
    assert again is not None and again["imported"] == 0 and again["kept_out"] == 1


# Addresses and names a spreadsheet would run as formulas, and ones that already start with
# the apostrophe the export adds: each must come back exactly.
TRICKY = [
    ("-dash@example.com", "-Minus"),
    ("=eq@example.com", '=HYPERLINK("http://evil")'),
    ("+plus@example.com", "+1 555"),
    ("'=quoted@example.com", "'=already quoted"),
    ("'plain@example.com", "'Neill"),
    ("o'neill@example.com", "@handle"),
    ("''twice@example.com", "''"),
]


def test_export_then_import_gives_back_exactly_the_same_people(db: Session, tmp_path: Path) -> None:
    """Regression: the export's spreadsheet-safety apostrophe came back as part of the address."""
    for email, name in TRICKY:
        active_subscriber(db, email, name)
    paused = active_subscriber(db, "paused@example.com", "Paused")
    service.set_paused(db, paused, True)
    service.unsubscribe(db, active_subscriber(db, "left@example.com", "Left"))
    db.commit()
    before = {
        s.email: (s.name, s.status, s.paused, s.consent_at) for s in db.scalars(select(Subscriber))
    }
    out = tmp_path / "ours.csv"
    assert cli("subscribers", "export", "-o", str(out)).exit_code == 0
    cells = {row["email"] for row in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8")))}
    assert "'-dash@example.com" in cells  # still safe to open in a spreadsheet
    db.execute(delete(Subscriber))
    db.execute(delete(Suppression))
    db.commit()
    code, report, _ = _import(out)
    assert code == 0 and report is not None and report["format"] == "newsletter"
    db.expire_all()
    after = {
        s.email: (s.name, s.status, s.paused, s.consent_at) for s in db.scalars(select(Subscriber))
    }
    assert after == before
    # Who had left has left again, and is suppressed again.
    assert repository.suppression_for(db, service.find(db, "left@example.com").email_hash)  # type: ignore[union-attr]


def _report(tmp_path: Path, text: str, *args: str, name: str = "f.csv") -> Any:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    _, report, stderr = _import(path, *args)
    assert report is not None, stderr
    return report


def test_a_status_word_never_overrules_the_file_it_is_in(db: Session, tmp_path: Path) -> None:
    # Mailchimp's unsubscribed file says who left; a "subscribed" cell beside it changes nothing.
    report = _report(
        tmp_path,
        "Email Address,LEID,EUID,UNSUB_TIME,STATUS\n"
        "a@example.com,1,x,2024-01-01 00:00:00,subscribed\n"
        "b@example.com,2,y,2024-01-01 00:00:00,unsubscribed\n"
        "c@example.com,3,z,2024-01-01 00:00:00,cleaned\n",
    )
    assert report["kept_out_by_reason"] == {
        "unsubscribed: the Mailchimp unsubscribed file (UNSUB_TIME)": 2,
        'bounced: status "cleaned"': 1,
    }
    assert {s.email: s.status.value for s in db.scalars(select(Subscriber))} == {
        "a@example.com": "unsubscribed",
        "b@example.com": "unsubscribed",
        "c@example.com": "bounced",
    }


def test_flags_and_second_status_columns_name_their_column(db: Session, tmp_path: Path) -> None:
    ghost = _report(
        tmp_path,
        "email,subscribed_to_emails,complimentary_plan,deleted_at,labels\n"
        "a@example.com,false,false,,\n"
        "b@example.com,true,false,2024-01-01,x;y\n"
        'c@example.com,TRUE,false,,"x;y,z"\n',
        name="ghost.csv",
    )
    assert ghost["format"] == "ghost"
    assert ghost["kept_out_by_reason"] == {
        "unsubscribed: subscribed_to_emails = false": 1,
        "unsubscribed: deleted_at set": 1,
    }
    c = service.find(db, "c@example.com")
    assert c is not None and repository.tags_of(db, c.id) == ["x;y", "z"]  # Ghost splits on ","
    substack = _report(
        tmp_path,
        "email,active_subscription,plan,email_disabled\nd@example.com,false,other,true\n"
        "e@example.com,false,other,no\n",
        name="substack.csv",
    )
    assert substack["kept_out_by_reason"] == {"unsubscribed: email_disabled = true": 1}
    # listmonk: an empty subscriber status, and the list subscription says unsubscribed.
    listmonk = _report(
        tmp_path,
        "uuid,email,name,attributes,status,subscription_status\n"
        "u1,f@example.com,F,{},,unsubscribed\nu2,g@example.com,G,{},enabled,unconfirmed\n"
        "u3,h@example.com,H,{},enabled,odd\n",
        name="listmonk.csv",
    )
    assert listmonk["kept_out_by_reason"] == {'unsubscribed: status "unsubscribed"': 1}
    assert listmonk["pending"] == 1
    [odd] = listmonk["invalid"]
    assert odd["reason"] == (
        "unknown status 'odd' in column 'subscription_status' for listmonk (subscribers "
        "export): nobody is imported on a guess (choose the right --format, or map another "
        "status column)"
    )


def test_a_short_row_and_the_tag_limits_exactly(db: Session, tmp_path: Path) -> None:
    fifty = ",".join(f"t{i}" for i in range(50))
    report = _report(
        tmp_path,
        "email,name,tags,status\n"
        "short@example.com,Short\n"  # no tags or status cells at all: simply subscribed
        f'fifty@example.com,F,"{fifty}",active\n'
        f"long@example.com,L,{'x' * 100},active\n",
    )
    assert report["imported"] == 3 and report["invalid"] == []
    fifty_id = service.find(db, "fifty@example.com").id  # type: ignore[union-attr]
    assert len(repository.tags_of(db, fifty_id)) == 50


def test_a_bare_list_finds_its_address_column(db: Session, tmp_path: Path) -> None:
    report = _report(tmp_path, "Ann,ann@example.com\nBo,bo@example.com\n")
    assert report["imported"] == 2 and report["columns"] == {"email": "column 2"}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_progress_reaches_the_end_of_the_file(db: Session, tmp_path: Path, encoding: str) -> None:
    from subscribers import importer

    text = "email\r\n" + "".join(f"p{i}@example.com\r\n" for i in range(30))
    path = tmp_path / "p.csv"
    path.write_bytes(text.encode(encoding))
    seen: list[int] = []
    importer.import_csv(path, on_progress=seen.append)
    # UTF-16: two bytes a character, after the two of the byte-order mark.
    assert seen[-1] == path.stat().st_size - (2 if encoding == "utf-16" else 0)


def test_utf16_lines_that_are_broken_or_endless_are_refused_alone(
    db: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from subscribers import importer

    monkeypatch.setattr(csv_reading, "MAX_LINE_BYTES", 200)
    data = (
        "\ufeffemail,name\n".encode("utf-16-le")
        + "a@example.com,A\n".encode("utf-16-le")
        + "b@example.com,".encode("utf-16-le")
        + b"\x00\xd8"
        + "\n".encode("utf-16-le")
        + ("c@example.com," + "c" * 300 + "\n").encode("utf-16-le")
        # 95 characters: under the limit of 100 (200 bytes), so read as it is.
        + ("d@example.com," + "d" * 80 + "\n").encode("utf-16-le")
        + "e@example.com,E".encode("utf-16-le")  # the last line has no line end
    )
    path = tmp_path / "u16.csv"
    path.write_bytes(data)
    seen: list[int] = []
    report = importer.import_csv(path, on_progress=seen.append)
    assert [(i.line, i.reason) for i in report.invalid] == [
        (3, "not valid UTF-16 text (save the file as CSV UTF-8)"),
        (4, "line longer than 200 bytes"),
    ]
    assert set(db.scalars(select(Subscriber.email))) == {
        "a@example.com",
        "d@example.com",
        "e@example.com",
    }
    assert seen[-1] == len(data) - 2  # all but the byte-order mark


def test_preview_reads_only_the_header_and_a_few_rows(db: Session, tmp_path: Path) -> None:
    from subscribers import importer

    path = tmp_path / "kit.csv"
    path.write_text(
        "first_name,email_address,state\n"
        + "".join(f"{'N' * 100},k{i}@example.com,active\n" for i in range(8)),
        encoding="utf-8",
    )
    shown = importer.preview(path)
    assert shown.mapping.fmt.key == "kit"
    assert shown.headers == ["first_name", "email_address", "state"]
    assert len(shown.sample) == 5
    assert shown.sample[0] == ["N" * 80, "k0@example.com", "active"]
    assert importer.preview(path, "generic").mapping.fmt.key == "generic"
    assert importer.preview(path, None, {"status": ""}).mapping.columns.get("status") is None
    bare = tmp_path / "bare.csv"
    bare.write_text("x@example.com\ny@example.com\n", encoding="utf-8")
    assert importer.preview(bare).headers == []
    broken = tmp_path / "broken.csv"
    broken.write_text('email\n"' + "x" * 140_000 + "\nok@example.com\n", encoding="utf-8")
    assert importer.preview(broken).sample == []
    with pytest.raises(importer.ImportRefused, match="unknown format 'zzz'"):
        importer.preview(path, "zzz")
    assert _count(db) == 0


def test_an_unknown_status_is_quoted_cut_short(db: Session, tmp_path: Path) -> None:
    word = "w" * 100
    report = _report(tmp_path, f"email,status\na@example.com,{word}\n")
    [row] = report["invalid"]
    assert row["reason"].startswith(f"unknown status '{'w' * 60}' in column 'status' for a CSV")


def test_every_row_is_accounted_for_once(db: Session, tmp_path: Path) -> None:
    from subscribers import importer
    from tests.subscribers.exports import KIT

    path = tmp_path / KIT.filename
    path.write_bytes(KIT.content())
    first = importer.import_csv(path)
    assert (first.imported, first.kept_out, first.accounted()) == (3, 3, 6)
    path.write_bytes(KIT.content().replace(b"Al,al@kit", b"Alan,al@kit"))
    again = importer.import_csv(path)
    assert (again.updated, again.kept_out, again.skipped, again.accounted()) == (1, 3, 2, 6)
