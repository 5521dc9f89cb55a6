"""How long the `newsletter` command takes to start: `--help`, a group's help, a short command.

Issue 19: `newsletter --help` and short commands should start in well under half a second. Each
command runs N times as a fresh process (the console script beside this interpreter, so a
`PYTHONPATH` pointing at a worktree times that worktree's code) in a temporary directory whose
SQLite database `newsletter init` has just created. `python -c pass` in the same run is the
floor (interpreter start); each figure is also given as a multiple of it. The machine's load
is printed with the figures: they mean little without it.
Target: every command below 0.5 s (median).

    .venv/bin/python -m bench.cli_start [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 0.5


def _time(argv: list[str], cwd: Path, env: dict[str, str], runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
        timings.append(time.perf_counter() - started)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-400:]}")
    return timings


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    python = sys.executable
    newsletter = str(Path(python).parent / "newsletter")
    workdir = Path(tempfile.mkdtemp(prefix="bench-cli-start-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{workdir / 'newsletter.db'}",
        "NEWSLETTER_BASE_URL": "http://localhost:8000",
    }
    env.pop("NEWSLETTER_SECRET_KEY", None)
    try:
        _run(args.runs, python, newsletter, workdir, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(runs: int, python: str, newsletter: str, workdir: Path, env: dict[str, str]) -> None:
    subprocess.run([newsletter, "init"], cwd=workdir, env=env, check=True, capture_output=True)

    cases = [
        ("python -c pass", [python, "-c", "pass"]),
        ("python -c 'import newsletter.cli'", [python, "-c", "import newsletter.cli"]),
        ("newsletter --help", [newsletter, "--help"]),
        ("newsletter issue --help", [newsletter, "issue", "--help"]),
        ("newsletter stats --help", [newsletter, "stats", "--help"]),
        ("newsletter users list", [newsletter, "users", "list"]),
    ]
    print(f"load average before: {_load()}; {runs} runs each; code from {_code_root(env)}")
    floor = None
    worst = 0.0
    for label, argv in cases:
        timings = _time(argv, workdir, env, runs)
        median = statistics.median(timings)
        if floor is None:
            floor = median
        if label.startswith("newsletter"):
            worst = max(worst, median)
        print(
            f"{label:38} median {median * 1000:6.0f} ms  max {max(timings) * 1000:6.0f} ms"
            f"  ({median / floor:4.1f}x python -c pass)"
        )
    print(f"load average after: {_load()}")
    verdict = "met" if worst < TARGET_SECONDS else "NOT met"
    print(f"slowest median {worst * 1000:.0f} ms: target < {TARGET_SECONDS} s {verdict}")


def _code_root(env: dict[str, str]) -> str:
    found = subprocess.run(
        [sys.executable, "-c", "import newsletter; print(newsletter.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return str(Path(found.stdout.strip()).parent.parent)


if __name__ == "__main__":
    main()
