"""A matchup is its two exact tool names: different pairs never share a slug or a row."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from newsletter.cli import app
from newsletter.matchups.models import Matchup
from tests.matchups.test_bad_files import matchup_json

PAIRS = [
    ("東京", "大阪"),
    ("札幌", "福岡"),
    ("🙂", "🙃"),
    ("😀", "😁"),
    ("Quill.ai", "Ink"),
    ("Quill-ai", "Ink"),
    ("Red vs Blue", "Critic"),
    ("Red", "Blue vs Critic"),
]


def _write(folder: Path, pairs: list[tuple[str, str]], description: str) -> None:
    for number, (a, b) in enumerate(pairs):
        item = matchup_json()
        item["tools"][0]["name"], item["tools"][1]["name"] = a, b
        item["tools"][0]["description"] = description
        (folder / f"{number}.json").write_text(json.dumps(item), encoding="utf-8")


def test_pairs_that_reduce_to_the_same_words_stay_apart_and_reimports_update(
    db_url: str, db: Session, tmp_path: Path
) -> None:
    folder = tmp_path / "pages"
    folder.mkdir()
    _write(folder, PAIRS, "First words.")
    first = CliRunner().invoke(app, ["matchups", "import", str(folder), "--json"])
    assert first.exit_code == 0, first.output
    outcomes = json.loads(first.stdout)["imported"]
    assert [o["outcome"] for o in outcomes] == ["created"] * len(PAIRS)
    slugs = [o["slug"] for o in outcomes]
    assert len(set(slugs)) == len(PAIRS), slugs
    assert slugs[0] == "東京-vs-大阪" and slugs[4] == "quill-ai-vs-ink"

    _write(folder, PAIRS, "Second words.")
    again = CliRunner().invoke(app, ["matchups", "import", str(folder), "--json"])
    assert [o["outcome"] for o in json.loads(again.stdout)["imported"]] == ["updated"] * len(PAIRS)
    assert [o["slug"] for o in json.loads(again.stdout)["imported"]] == slugs  # links stay

    stored = CliRunner().invoke(app, ["matchups", "list", "--json"])
    names = sorted(
        (m["tools"][0]["name"], m["tools"][1]["name"]) for m in json.loads(stored.stdout)
    )
    assert names == sorted(PAIRS)
    assert all(m["tools"][0]["description"] == "Second words." for m in json.loads(stored.stdout))
    assert len(db.scalars(select(Matchup)).all()) == len(PAIRS)
