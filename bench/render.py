"""Rendering one issue: the HTML size against Gmail's ~102 KB clip, and the time to compile.

Imports the seed pages (../shared/seeds) and the repository's examples into a fresh SQLite file,
builds one issue featuring 10 matchups (the long seed quotes make it a heavy issue), and renders
it the way a send does (once per variant). The cost does not depend on the list: per-recipient
values are one placeholder filled at send time.
Target: the HTML stays below 100 KB.

    .venv/bin/python -m bench.render [--rounds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGES = [
    *sorted((REPO.parent / "shared" / "seeds").glob("*.txt")),
    *sorted((REPO / "examples" / "matchups").glob("*.txt")),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-render-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.db'}"
    os.environ["NEWSLETTER_MAX_MATCHUPS"] = "10"

    from newsletter.db import transaction
    from newsletter.issues import service as issues
    from newsletter.matchups import service as matchups
    from newsletter.migrate import upgrade

    upgrade()
    now = datetime.now(UTC)
    with transaction() as session:
        for index, page in enumerate(PAGES):
            parsed = matchups.read_file(page)
            assert isinstance(parsed, matchups.ParsedFile), parsed
            for data in parsed.matchups:
                matchups.import_matchup(session, data, now - timedelta(hours=index + 1))
        issue = issues.build_issue(session, now=now)
        featured = len(issues.content(session, issue).featured)
        issue_id = issue.id

    timings = []
    for _ in range(args.rounds):
        with transaction() as session:
            started = time.perf_counter()
            tracked = issues.frozen_content(
                session, issue_id, tracked=True
            )  # a draft: rendered live
            untracked = issues.frozen_content(session, issue_id, tracked=False)
            timings.append((time.perf_counter() - started) / 2)

    print(f"matchups featured:          {featured} (of {len(PAGES)} pages)")
    print(f"HTML, tracked variant:      {len(tracked.html.encode()):,} bytes")
    print(f"HTML, untracked variant:    {len(untracked.html.encode()):,} bytes")
    print(f"plain-text part:            {len(tracked.text.encode()):,} bytes")
    print(
        f"render (MJML compile incl.): median {statistics.median(timings) * 1000:.1f} ms, "
        f"max {max(timings) * 1000:.1f} ms over {args.rounds} rounds"
    )
    verdict = "OK" if len(tracked.html.encode()) < 100_000 else "OVER"
    print(f"target < 100 KB:            {verdict}")


if __name__ == "__main__":
    main()
