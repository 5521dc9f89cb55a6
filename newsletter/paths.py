"""Every public path the web app serves, in one place.

Mail builders, pages and tests ask here for a URL instead of spelling it out, so an email can
never point at a page that does not exist: the routes are declared with the same patterns
(`*_PATTERN`), and a rename is one edit. Functions return paths; `absolute` prefixes the
configured NEWSLETTER_BASE_URL for links that leave the app (emails, feeds).
"""

from __future__ import annotations

from urllib.parse import quote

from newsletter.settings import get_settings

HOME = "/"
ARCHIVE = "/issues"
FEED = "/issues/feed.atom"
SUBSCRIBE = "/subscribe"
LOGIN = "/login"
EDITOR_ISSUES = "/admin/issues"

EDITOR_ISSUE_PATTERN = "/admin/issues/{issue_id}"
WEB_VERSION_PATTERN = "/issues/{week}"
PUBLIC_VOTE_PATTERN = "/issues/{week}/vote/{slug}"
SAMPLE_LINK_PATTERN = "/sample/{what}"


def absolute(path: str) -> str:
    return get_settings().newsletter_base_url.rstrip("/") + path


def editor_issue(issue_id: int) -> str:
    """Where an editor previews, edits, approves and schedules one issue."""
    return EDITOR_ISSUE_PATTERN.format(issue_id=issue_id)


def web_version(week: str) -> str:
    """The public "view in browser" page of a published issue."""
    return WEB_VERSION_PATTERN.format(week=quote(week, safe=""))


def public_vote(week: str, slug: str) -> str:
    """Where a vote button on the public web version leads (the page explains how to vote)."""
    return PUBLIC_VOTE_PATTERN.format(week=quote(week, safe=""), slug=quote(slug, safe=""))


def sample_link(what: str) -> str:
    """What a per-reader link in a preview or test copy opens: a page saying what it does."""
    return SAMPLE_LINK_PATTERN.format(what=quote(what, safe=""))
