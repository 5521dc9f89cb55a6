"""Tracking off: the mail a subscriber gets has no open pixel and no rewritten link.

Built with the issues area's real render from the seed pages; the endpoints' side of the
promise (nothing recorded for an opted-out reader) is in test_first_party.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from newsletter.issues import service as issues
from newsletter.matchups import service as matchups
from newsletter.security.delivery_tokens import TOKEN_PLACEHOLDER
from newsletter.settings import get_settings
from tests.conftest import SEEDS


def test_the_untracked_render_has_no_pixel_and_no_click_redirects(db: Session) -> None:
    published = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    for path in sorted(SEEDS.glob("*.txt"))[:3]:
        parsed = matchups.read_file(path)
        assert not isinstance(parsed, matchups.RefusedFile)
        for data in parsed.matchups:
            matchups.import_matchup(db, data, published)
    issue = issues.build_issue(db, "2026-W10", now=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    issues.approve(db, issue.id, by="editor@example.com")
    db.commit()
    base = get_settings().newsletter_base_url
    tracked = issues.frozen_content(db, issue.id, tracked=True)
    untracked = issues.frozen_content(db, issue.id, tracked=False)

    assert f"{base}/o/{TOKEN_PLACEHOLDER}.gif" in tracked.html
    assert f"{base}/c/{TOKEN_PLACEHOLDER}/" in tracked.html
    for body in (untracked.html, untracked.text):
        assert "/o/" not in body
        assert f"/c/{TOKEN_PLACEHOLDER}" not in body
    # Votes and unsubscribing are the reader's own actions: they stay.
    assert f"{base}/v/{TOKEN_PLACEHOLDER}/" in untracked.html
    assert f"{base}/u/{TOKEN_PLACEHOLDER}" in untracked.html
