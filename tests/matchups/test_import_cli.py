"""`newsletter matchups import|list`, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.matchups.models import Matchup, MatchupReview, MatchupTool
from tests.conftest import SEEDS
from tests.matchups.pages import FOUR_LENS_QUOTES, page, tool_block

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def counts(db: Session) -> tuple[int, int, int]:
    return (
        db.scalar(select(func.count()).select_from(Matchup)) or 0,
        db.scalar(select(func.count()).select_from(MatchupTool)) or 0,
        db.scalar(select(func.count()).select_from(MatchupReview)) or 0,
    )


def test_import_seed_folder_and_list_json(db_url: str, db: Session) -> None:
    code, out, err = run("matchups", "import", str(SEEDS))
    assert code == 0, err
    assert "5 created" in out
    assert counts(db) == (5, 10, 40)

    code, out, _ = run("matchups", "list", "--json")
    assert code == 0
    items = json.loads(out)
    assert len(items) == 5
    first = next(i for i in items if i["slug"] == "claude-haiku-open-weights-vs-mistral-medium-3")
    assert set(first) == {"slug", "title", "published_at", "tools", "reviews"}
    assert first["title"] == "Claude Haiku Open Weights vs Mistral Medium 3"
    assert [t["name"] for t in first["tools"]] == ["Claude Haiku Open Weights", "Mistral Medium 3"]
    assert [t["panel_ship_pct"] for t in first["tools"]] == [50, 100]
    assert [t["community_pct"] for t in first["tools"]] == [None, None]
    assert [t["entry"] for t in first["tools"]] == ["Free", "Paid"]
    assert set(first["tools"][0]) == {
        "name",
        "category",
        "tagline",
        "panel_ship_pct",
        "community_pct",
        "entry",
        "description",
    }
    assert first["reviews"][0] == {
        "reviewer": 1,
        "lens": "builder",
        "tool": 0,
        "quote": first["reviews"][0]["quote"],
    }
    assert first["reviews"][7]["lens"] == "money" and first["reviews"][7]["tool"] == 1
    assert first["published_at"].endswith("+00:00")


def test_reimport_updates_in_place_never_duplicates(
    db_url: str, db: Session, tmp_path: Path
) -> None:
    target = tmp_path / "page.txt"
    target.write_text(page(tool_block("Alpha", panel="50%"), tool_block("Beta"), FOUR_LENS_QUOTES))
    assert run("matchups", "import", str(target))[0] == 0
    matchup_id = db.scalar(select(Matchup.id))

    code, out, _ = run("matchups", "import", str(target))
    assert code == 0 and "unchanged" in out

    target.write_text(
        page(tool_block("Alpha", panel="100%"), tool_block("Beta"), FOUR_LENS_QUOTES[:4])
    )
    code, out, _ = run("matchups", "import", str(target))
    assert code == 0 and "1 updated" in out
    db.expire_all()
    assert counts(db) == (1, 2, 4)
    assert db.scalar(select(Matchup.id)) == matchup_id
    assert db.scalar(select(MatchupTool.panel_ship_pct).where(MatchupTool.position == 0)) == 100


def test_bad_file_refused_whole_good_files_still_go_in(
    db_url: str, db: Session, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    shutil.copy(SEEDS / sorted(p.name for p in SEEDS.glob("*.txt"))[0], folder / "a_good.txt")
    seed_text = (SEEDS / sorted(p.name for p in SEEDS.glob("*.txt"))[1]).read_text()
    (folder / "b_cut.txt").write_text("\n".join(seed_text.split("\n")[:27]))

    code, out, err = run("matchups", "import", str(folder))
    assert code == 1
    assert "b_cut.txt:" in err and "truncated" in err
    assert "1 created" in out and "1 refused" in out
    assert counts(db) == (1, 2, 8)  # the good page only; nothing of the cut one


def test_missing_path_is_refused(db_url: str, tmp_path: Path) -> None:
    code, _, err = run("matchups", "import", str(tmp_path / "nope.txt"))
    assert code == 1 and "no such file" in err


def test_json_form_round_trip(db_url: str, db: Session, tmp_path: Path) -> None:
    assert run("matchups", "import", str(SEEDS))[0] == 0
    exported = json.loads(run("matchups", "list", "--json")[1])
    exported[0]["tools"][1]["community_pct"] = 64
    exported[0]["published_at"] = "2026-11-16T08:00:00+00:00"
    path = tmp_path / "one.json"
    path.write_text(json.dumps(exported[0]))

    code, out, err = run("matchups", "import", str(path), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["imported"] == [
        {"file": str(path), "slug": exported[0]["slug"], "outcome": "updated"}
    ]
    again = {m["slug"]: m for m in json.loads(run("matchups", "list", "--json")[1])}
    assert again[exported[0]["slug"]]["tools"][1]["community_pct"] == 64
    assert again[exported[0]["slug"]]["published_at"] == "2026-11-16T08:00:00+00:00"
    assert counts(db)[0] == 5


def test_json_form_errors_name_the_field(db_url: str, db: Session, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"tools": [{"name": "A"}], "reviews": []}]))
    code, out, _ = run("matchups", "import", str(bad), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["refused"][0]["file"] == str(bad)
    assert report["refused"][0]["reason"].startswith("[0].tools")
    assert counts(db) == (0, 0, 0)


def test_published_at_option(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text(page(tool_block("Alpha"), tool_block("Beta"), FOUR_LENS_QUOTES))
    assert run("matchups", "import", str(path), "--published-at", "2026-11-17T10:00")[0] == 0
    listed = json.loads(run("matchups", "list", "--json")[1])
    assert listed[0]["published_at"] == "2026-11-17T10:00:00+00:00"
    code, _, err = run("matchups", "import", str(path), "--published-at", "yesterday")
    assert code != 0 and "ISO 8601" in err
