"""`python -m bench.send_ceiling` at a tiny size on SQLite, so the ceiling benchmark never rots:
the prebuilt requests are accepted by the loopback server, and the real command reaches every
subscriber exactly once (the bench checks both and fails otherwise). No time is asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_tiny_ceiling_run_sends_to_everyone_once_and_prints_its_share(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NEWSLETTER_", "SENDGRID_", "DATABASE_URL"))
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["TMPDIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "bench.send_ceiling", "--subscribers", "2100"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # 2,100 subscribers, every 50th untracked: 3 batches of 1,000, each split in two requests.
    assert "SQLite: 2,100 subscribers" in out.stdout and "6 requests" in out.stdout
    share = re.search(r"share of the ceiling: (\d+\.\d\d)", out.stdout)
    assert share is not None and float(share.group(1)) > 0, out.stdout
