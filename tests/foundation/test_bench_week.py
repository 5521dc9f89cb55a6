"""`python -m bench.week` at a tiny size on SQLite, so the week's benchmark never rots: every
door it goes through (the CLI, the signed webhook, pixel and click, the editor's and the
admin's pages, the API) still answers as the bench expects. No time is asserted (speed lives
in bench/ and the README's Figures)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STEPS = (
    "1 import",
    "2a matchups import",
    "2b issue build",
    "2c issue approve",
    "3 send",
    "4 webhook events",
    "5 pixel + click hits",
    "6a stats page",
    "6b newsletter stats",
    "6c API stats route",
    "7a erasure",
    "7b one person's export",
    "7c list CSV export",
)


def test_a_tiny_week_runs_every_step_on_sqlite(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEWSLETTER_", "SENDGRID_", "DATABASE_URL"))
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["TMPDIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "bench.week", "--subscribers", "300", "--sqlite"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    for step in STEPS:
        assert any(line.startswith(step) for line in lines), (step, out.stdout)
    table = {line[:34].strip(): line[34:].split() for line in lines if line[:1].isdigit()}
    assert table["1 import (subscribers import)"][0] == "300"
    # 300 rows, 2 invalid, 2 repeated: 296 people, every one of them mailed.
    assert table["3 send (2 workers, sendgrid)"][0] == "296"
    assert "server accepted 296 recipients" in out.stdout
    assert table["4 webhook events (6·N)"][0] == "1,800"
    assert "1,800 stored" in out.stdout
    assert table["5 pixel + click hits (0.4·N)"][0] == "120"
    assert "0 errors" in out.stdout
    # The list's CSV after one erasure: 295 people.
    assert table["7c list CSV export (admin)"][0] == "295"
