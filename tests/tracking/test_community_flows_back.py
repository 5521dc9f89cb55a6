"""Readers' votes flow back into the verdict the issue pages show (issue 6: the community
figure, with the number of votes behind it)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from newsletter.issues import repository as issues_repository
from newsletter.issues import service as issues
from newsletter.votes import service as votes
from tests.tracking.conftest import World


def _community_line(db: Session, world: World, slug: str) -> str:
    issue = issues_repository.get(db, world.issue_id)
    assert issue is not None
    [item] = [f for f in issues.content(db, issue).featured if f.verdict.slug == slug]
    return item.verdict.community


def test_votes_through_the_web_change_the_verdict_sentence(
    client: TestClient, db: Session, world: World
) -> None:
    slug = world.slugs[0]  # Cursor vs Windsurf; the page itself shows no community figure
    assert "no votes yet" in _community_line(db, world, slug).lower()

    # Two readers back Windsurf, one backs Cursor; the first then changes their mind: the
    # latest vote counts.
    for reader, tool in ((0, 0), (1, 1), (2, 1), (0, 1)):
        response = client.post(f"/v/{world.token(reader)}/{slug}/{tool}")
        assert response.status_code == 200

    db.expire_all()
    assert votes.community_split(db, world.matchups[0]) == (0, 3)
    line = _community_line(db, world, slug)
    assert "Windsurf" in line and "100%" in line and "3" in line
