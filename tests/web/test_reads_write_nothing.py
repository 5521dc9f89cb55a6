"""Reading an issue writes nothing: the editor's preview, the public web version, the CLI
preview and a test send of an issue that is not frozen render it as it is and store nothing;
the send is what freezes it (the renders and the click redirect's links)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from newsletter import paths
from newsletter.db import transaction
from newsletter.issues.models import Issue, IssueLink, IssueStatus
from tests.web.conftest import mark_sent

RENDERS = (
    Issue.rendered_at,
    Issue.rendered_html,
    Issue.rendered_untracked_html,
    Issue.rendered_public_html,
    Issue.updated_at,
)


def _stored(issue_id: int) -> tuple[Any, ...]:
    with transaction() as session:
        row = session.execute(select(*RENDERS).where(Issue.id == issue_id)).one()
        links = session.scalar(
            select(func.count()).select_from(IssueLink).where(IssueLink.issue_id == issue_id)
        )
        return (*row, links)


def _unfreeze(issue_id: int) -> None:
    """An issue approved before approval froze it (older rows): nothing rendered, no links."""
    with transaction() as session:
        session.execute(
            update(Issue)
            .where(Issue.id == issue_id)
            .values(
                rendered_at=None,
                rendered_html=None,
                rendered_untracked_html=None,
                rendered_public_html=None,
            )
        )
        session.execute(IssueLink.__table__.delete().where(IssueLink.issue_id == issue_id))


def test_no_page_or_command_that_shows_an_issue_writes_it(
    editor: TestClient, anon: TestClient, draft_issue: int, tmp_path: Path
) -> None:
    from newsletter.cli import app

    # A draft: the editor's page and its preview, the CLI preview.
    before = _stored(draft_issue)
    assert before[0] is None and before[-1] == 0
    assert editor.get(paths.editor_issue(draft_issue)).status_code == 200
    shown = CliRunner().invoke(
        app, ["issue", "preview", str(draft_issue), "--html", str(tmp_path / "p.html")]
    )
    assert shown.exit_code == 0, shown.output
    assert "Read the full matchup" in (tmp_path / "p.html").read_text()
    assert _stored(draft_issue) == before

    # Published, but not frozen (an older row): the web version renders it as it is.
    mark_sent(draft_issue)
    _unfreeze(draft_issue)
    before = _stored(draft_issue)
    with transaction() as session:
        week = session.scalar(select(Issue.week).where(Issue.id == draft_issue))
    assert week is not None
    page = anon.get(paths.web_version(week))
    assert page.status_code == 200 and "Read the full matchup" in page.text
    assert editor.get(paths.editor_issue(draft_issue)).status_code == 200
    assert _stored(draft_issue) == before


def test_starting_the_send_freezes_an_issue_approved_before_approval_froze(
    draft_issue: int,
) -> None:
    from newsletter.issues import service as issues
    from newsletter.sending import service as sending

    with transaction() as session:
        issues.approve(session, draft_issue, by="editor@example.com")
    _unfreeze(draft_issue)
    assert _stored(draft_issue)[0] is None
    with transaction() as session:
        assert sending.start_send(session, draft_issue)
    stored = _stored(draft_issue)
    assert all(value is not None for value in stored[:4]) and stored[-1] > 0
    with transaction() as session:
        tracked = issues.frozen_content(session, draft_issue, tracked=True)
        # Every click redirect in the frozen mail names a recorded link.
        keys = set(session.scalars(select(IssueLink.key).where(IssueLink.issue_id == draft_issue)))
        status = issues.status_of(session, draft_issue)
    assert status in (IssueStatus.SENDING, IssueStatus.SENT)
    clicked = {
        part.split("/")[0].split('"')[0] for part in tracked.html.split("/c/__NL_TOKEN__/")[1:]
    }
    assert clicked and clicked <= keys
