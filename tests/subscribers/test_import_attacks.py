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

from subscribers import repository, service
from subscribers.importer import MAX_LINE_BYTES
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


def test_a_file_name_too_long_for_the_system_is_a_clear_error(tmp_path: Path) -> None:
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
