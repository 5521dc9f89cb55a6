"""The inbox folder: pages dropped there are imported by the weekly job, then filed away.

Each file ends in `done/` (imported) or `rejected/` with `<name>.reason.txt` beside it, so the
folder itself shows what happened and nothing is imported twice by accident. Import is an upsert
by slug, so a file imported by a scheduler that died before moving it is harmless next time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from newsletter.db import transaction
from newsletter.matchups import service as matchups

log = logging.getLogger("newsletter.scheduler")

DONE = "done"
REJECTED = "rejected"
# Files still being written by whoever drops them (editors' sync tools, scp) are left alone.
IN_PROGRESS_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload")


@dataclass
class InboxReport:
    imported: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # file name -> reason
    matchups: list[str] = field(default_factory=list)  # slugs created or updated


def _waiting_files(inbox: Path) -> list[Path]:
    if not inbox.is_dir():
        return []
    return sorted(
        p
        for p in inbox.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and not p.name.endswith(".reason.txt")
        and not p.name.lower().endswith(IN_PROGRESS_SUFFIXES)
    )


def _free_name(folder: Path, name: str, stamp: str) -> Path:
    # A page re-sent with the same name must not overwrite the earlier copy in done/.
    target = folder / name
    if not target.exists():
        return target
    stem, dot, suffix = name.rpartition(".")
    base = f"{stem}.{stamp}" if dot else f"{name}.{stamp}"
    target = folder / (f"{base}.{suffix}" if dot else base)
    counter = 1
    while target.exists():
        counter += 1
        target = folder / (f"{base}-{counter}.{suffix}" if dot else f"{base}-{counter}")
    return target


def _file_away(path: Path, folder: Path, stamp: str, reason: str | None = None) -> Path | None:
    folder.mkdir(exist_ok=True)
    target = _free_name(folder, path.name, stamp)
    if reason is not None:
        # The reason goes first: a reader who sees the rejected file also finds why.
        Path(f"{target}.reason.txt").write_text(reason + "\n", encoding="utf-8")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        # Another scheduler (or `--once`) filed it first; its import was the same upsert.
        return None
    return target


def import_inbox(inbox: Path, *, now: datetime) -> InboxReport:
    """Import every waiting file, one transaction per file (a bad file never blocks the rest)."""
    report = InboxReport()
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    for path in _waiting_files(inbox):
        try:
            _import_one(inbox, path, stamp, now, report)
        except OSError as exc:
            # The folder itself failed (permissions, a full disk): the file stays where it is,
            # for the next run, and the other files still go in.
            report.rejected[path.name] = f"{path.name}: could not be filed: {exc}"
            log.error("inbox: %s could not be filed: %s", path.name, exc)
    return report


def _import_one(inbox: Path, path: Path, stamp: str, now: datetime, report: InboxReport) -> None:
    """Import one file in its own transaction and file it in done/ or rejected/."""
    parsed = matchups.read_file(path)
    if isinstance(parsed, matchups.RefusedFile):
        _reject(inbox, parsed, stamp, report)
        return
    try:
        with transaction() as session:
            slugs = []
            for data in parsed.matchups:
                # A page that carries no date counts as published when it reached the inbox,
                # so this week's issue picks it; a re-sent page keeps its first date.
                known = matchups.find(session, data) is not None
                when = data.published_at or (None if known else now)
                matchup, outcome = matchups.import_matchup(session, data, when)
                slugs.append(f"{matchup.slug} ({outcome.value})")
    except Exception as exc:
        _reject(inbox, matchups.not_stored(path, exc), stamp, report)
        return
    _file_away(path, inbox / DONE, stamp)
    report.imported.append(path.name)
    report.matchups.extend(slugs)
    log.info("inbox: imported %s: %s", path.name, ", ".join(slugs))


def _reject(inbox: Path, refused: matchups.RefusedFile, stamp: str, report: InboxReport) -> None:
    path = refused.path
    reason = refused.message().replace(str(path), path.name, 1)
    _file_away(path, inbox / REJECTED, stamp, reason)
    report.rejected[path.name] = reason
    log.warning("inbox: rejected %s: %s", path.name, reason)
