"""`make bench`: every benchmark in turn, each in its own process, each printing its figures.

Targets live here and in the README, never in timed tests: figures depend on the machine.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = [
    ("bench.render", "render a 10-matchup issue (HTML < 100 KB, Gmail clips at ~102 KB)"),
    (
        "bench.subscribers_import",
        "import a 1,000,000-row CSV (target >= 50,000 rows/s, flat memory)",
    ),
    ("bench.send", "send to 100,000 via the sendgrid transport (>= 20,000/s, >= 50x baseline)"),
    ("bench.webhook", "webhook: signed POSTs of 1,000 events (>= 10,000 events/s)"),
    ("bench.tracking_load", "pixel + click under load (>= 1,000 req/s, p99 < 50 ms)"),
    ("bench.web_subscribers", "admin list and search at 1,000,000 subscribers (< 300 ms)"),
    ("bench.stats", "an issue's numbers at 60,000 and 6,000,000 events (flat: ratio <= 1.5)"),
]


def main() -> int:
    only = set(sys.argv[1:])
    failed = []
    for module, what in BENCHMARKS:
        if only and module.removeprefix("bench.") not in only:
            continue
        print(f"\n=== {module}: {what}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", module])
        print(f"=== {module} finished in {time.monotonic() - started:.0f} s (exit {code})")
        if code:
            failed.append(module)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
