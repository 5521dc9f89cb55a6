"""Pages dropped in the inbox are imported, then filed in done/ or rejected/ with the reason."""

from __future__ import annotations

from pathlib import Path

from newsletter.db import transaction
from newsletter.matchups import repository
from newsletter.scheduling.inbox import import_inbox
from tests.conftest import SEEDS
from tests.scheduling.conftest import drop_seeds, utc

NOW = utc(2026, 3, 30, 7)


def test_good_pages_go_to_done_and_bad_ones_to_rejected_with_the_reason(
    db_url: str, inbox: Path
) -> None:
    good = drop_seeds(inbox, 2)
    seed_text = sorted(SEEDS.glob("*.txt"))[2].read_bytes()
    (inbox / "cut-short.txt").write_bytes(seed_text[: len(seed_text) // 3])
    (inbox / "upload.txt.part").write_bytes(seed_text)  # still being written: left alone

    report = import_inbox(inbox, now=NOW)

    assert sorted(report.imported) == good
    assert list(report.rejected) == ["cut-short.txt"]
    assert sorted(p.name for p in (inbox / "done").iterdir()) == good
    rejected = inbox / "rejected"
    assert sorted(p.name for p in rejected.iterdir()) == [
        "cut-short.txt",
        "cut-short.txt.reason.txt",
    ]
    reason = (rejected / "cut-short.txt.reason.txt").read_text()
    assert reason.startswith("cut-short.txt")
    assert reason.strip() == report.rejected["cut-short.txt"]
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == ["upload.txt.part"]
    with transaction() as session:
        matchups = repository.list_all(session)
    assert len(matchups) == 2
    assert all(m.published_at == NOW for m in matchups)


def test_a_page_sent_again_updates_its_matchup_and_keeps_both_files(
    db_url: str, inbox: Path
) -> None:
    [name] = drop_seeds(inbox, 1)
    import_inbox(inbox, now=NOW)
    drop_seeds(inbox, 1)
    report = import_inbox(inbox, now=utc(2026, 4, 6, 7))

    assert report.imported == [name]
    assert len(list((inbox / "done").iterdir())) == 2
    with transaction() as session:
        [matchup] = repository.list_all(session)
    assert matchup.published_at == NOW  # first arrival stays its publication time


def test_a_missing_inbox_folder_is_an_empty_inbox(db_url: str, tmp_path: Path) -> None:
    report = import_inbox(tmp_path / "nowhere", now=NOW)
    assert report.imported == [] and report.rejected == {}
