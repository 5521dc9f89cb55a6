"""One file that breaks the parser or the database is refused alone; the week goes on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.matchups.models import Matchup
from newsletter.scheduling.weekly import run_weekly_job
from tests.conftest import SEEDS
from tests.scheduling.conftest import utc


def matchup_json(**changes: Any) -> dict[str, Any]:
    tool = {
        "category": "Writing",
        "tagline": "t",
        "panel_ship_pct": 60,
        "entry": "Free",
        "description": "A tool.",
    }
    item: dict[str, Any] = {
        "tools": [{**tool, "name": "Quillfast"}, {**tool, "name": "Inkrun"}],
        "reviews": [
            {"reviewer": 1, "lens": "builder", "tool": 0, "quote": "The primitive is fine."},
            {"reviewer": 1, "lens": "builder", "tool": 1, "quote": "The primitive is thin."},
        ],
    }
    item.update(changes)
    return item


def bad_files(folder: Path) -> dict[str, str]:
    """Files that each break a different layer, and what their refusal must say."""
    seed = sorted(SEEDS.glob("*.txt"))[0].read_text(encoding="utf-8")
    lines = seed.split("\n")
    lines[12] = lines[12][:10] + "\x00" + lines[12][10:]  # inside the first description
    (folder / "nul.txt").write_text("\n".join(lines), encoding="utf-8")
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "long-number.json").write_text("[" + "7" * 5000 + "]")
    (folder / "far-date.json").write_text(
        json.dumps(matchup_json(published_at="9999-12-31T23:59:59-23:59"))
    )
    (folder / "nul.json").write_text(json.dumps(matchup_json(title="Quillfast\u0000 vs Inkrun")))
    (folder / "surrogate.json").write_text(
        json.dumps(matchup_json()).replace('"A tool."', '"A tool \\ud800."', 1)
    )
    huge = matchup_json()
    huge["reviews"][0]["reviewer"] = huge["reviews"][1]["reviewer"] = 10**30
    (folder / "huge-reviewer.json").write_text(json.dumps(huge))
    return {
        "nul.txt": "nul.txt:13: a NUL character at column 11",
        "deep.json": "deep.json: invalid JSON: nested too deeply",
        "long-number.json": "long-number.json: invalid JSON: Exceeds the limit",
        "far-date.json": "far-date.json: published_at: Value error, published_at 9999-12-31",
        "nul.json": "nul.json: title: a NUL character at column 10",
        "surrogate.json": "surrogate.json: tools.0.description: Input should be a valid string",
        "huge-reviewer.json": "huge-reviewer.json: reviews.0.reviewer: Input should be less",
    }


def test_matchups_import_refuses_each_bad_file_alone_and_imports_the_rest(
    db_url: str, db: Session, tmp_path: Path
) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    shutil.copy(sorted(SEEDS.glob("*.txt"))[1], folder / "good.txt")
    expected = bad_files(folder)

    result = CliRunner().invoke(app, ["matchups", "import", str(folder), "--json"])

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    report = json.loads(result.stdout)
    assert [Path(r["file"]).name for r in report["imported"]] == ["good.txt"]
    refused = {Path(r["file"]).name: r for r in report["refused"]}
    assert sorted(refused) == sorted(expected)
    for name, message in expected.items():
        assert f"refused {folder / name}" in result.stderr
        line = next(
            x for x in result.stderr.splitlines() if x.startswith(f"refused {folder / name}")
        )
        assert message.split(": ", 1)[1] in line, line
    assert len(db.scalars(select(Matchup)).all()) == 1


def test_the_weekly_run_files_bad_pages_in_rejected_and_builds_the_issue(
    db_url: str, db: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter.settings import reset_settings

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("NEWSLETTER_INBOX_DIR", str(inbox))
    reset_settings()
    for seed in sorted(SEEDS.glob("*.txt"))[:2]:
        shutil.copy(seed, inbox / seed.name)
    expected = bad_files(inbox)

    report = run_weekly_job(now=utc(2026, 3, 30, 7))

    assert sorted(report.inbox.imported) == sorted(p.name for p in sorted(SEEDS.glob("*.txt"))[:2])
    assert sorted(report.inbox.rejected) == sorted(expected)
    for name, message in expected.items():
        reason = (inbox / "rejected" / f"{name}.reason.txt").read_text(encoding="utf-8")
        assert reason.startswith(message.split(": ", 1)[0]) and message.split(": ", 1)[1] in reason
        assert (inbox / "rejected" / name).exists()
    assert report.issue_id is not None and report.matchups == 2
