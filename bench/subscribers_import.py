"""Subscriber CSV import: rows per second and peak memory on SQLite.

Generates a CSV (an Excel-style export: BOM, `;`, mixed-case addresses, names in two columns,
an extra column, ~0.5% invalid rows, ~1% duplicates) in a temp dir, and imports it into a fresh
SQLite file with the same code `newsletter subscribers import` runs. Each size runs in its own
process so its peak RSS (getrusage maxrss) is its own: memory that stays flat from the small
file to the large one shows the import streams.
Target: >= 50,000 rows/s, memory that does not grow with the file.

    .venv/bin/python -m bench.subscribers_import [--rows 1000000] [--small 400000] [--reimport]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_csv(path: Path, rows: int) -> None:
    first = ["Ann", "Bo", "Chidi", "Dana", "Émile", "Farah", "Goran", "Hiro"]
    last = ["Lee", "Ng", "Okafor", "Müller", "Smith", "O'Brien", "Nakamura"]
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        out.write('"E-Mail Address";First Name;Last Name;Signup Source\r\n')
        for i in range(rows):
            if i % 200 == 7:
                email = f"broken{i}@@example.com"  # invalid
            elif i % 100 == 3 and i > 3:
                email = f" USER{i - 1}@EXAMPLE{(i - 1) % 97}.COM "  # the previous row again
            else:
                email = f"User{i}@Example{i % 97}.com"
            out.write(f'{email};{first[i % 8]};"{last[i % 7]}";web form\r\n')


def child(rows: int, reimport: bool) -> None:
    from newsletter.db import dispose_engines
    from newsletter.migrate import upgrade
    from newsletter.settings import reset_settings
    from subscribers.importer import import_csv

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = folder / "export.csv"
        write_csv(csv_path, rows)
        url = f"sqlite:///{folder / 'bench.db'}"
        os.environ["DATABASE_URL"] = url
        os.environ.setdefault("NEWSLETTER_SECRET_KEY", "bench-secret")
        reset_settings()
        upgrade(url)
        dispose_engines()
        # The migration and file writing are not the import: measure from here.
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started, cpu_started = time.perf_counter(), time.process_time()
        report = import_csv(csv_path)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        result = {
            "rows": rows,
            "seconds": round(elapsed, 2),
            "rows_per_s": round(rows / elapsed),
            # On a shared machine wall time includes waiting for a core; CPU time does not.
            "cpu_seconds": round(cpu, 2),
            "rows_per_cpu_s": round(rows / cpu),
            "imported": report.imported,
            "skipped": report.skipped,
            "invalid": len(report.invalid),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_import_mb": round(base_rss / 1024, 1),
            "file_mb": round(csv_path.stat().st_size / 2**20, 1),
        }
        if reimport:
            started = time.perf_counter()
            again = import_csv(csv_path)
            elapsed = time.perf_counter() - started
            assert again.imported == 0
            result["reimport_rows_per_s"] = round(rows / elapsed)
        dispose_engines()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=400_000)
    parser.add_argument("--reimport", action="store_true", help="also time a second import")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.reimport)
        return
    results = []
    for rows in (args.small, args.rows):
        command = [sys.executable, "-m", "bench.subscribers_import", "--child", str(rows)]
        if args.reimport:
            command.append("--reimport")
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    for r in results:
        line = (
            f"{r['rows']:>9,} rows ({r['file_mb']} MB): {r['seconds']:6.2f} s, "
            f"{r['rows_per_s']:>7,} rows/s ({r['rows_per_cpu_s']:,} per CPU-second), peak RSS {r['peak_rss_mb']} MB "
            f"(before import {r['rss_before_import_mb']} MB); imported {r['imported']:,}, "
            f"skipped {r['skipped']:,}, invalid {r['invalid']:,}"
        )
        if "reimport_rows_per_s" in r:
            line += f"; re-import {r['reimport_rows_per_s']:,} rows/s"
        print(line)
    small, large = results
    growth = large["peak_rss_mb"] - small["peak_rss_mb"]
    print(
        f"memory growth from {small['rows']:,} to {large['rows']:,} rows: {growth:+.1f} MB; "
        f"target >= 50,000 rows/s: {'met' if large['rows_per_s'] >= 50_000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
