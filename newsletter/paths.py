"""Every path the app serves that a mail, a feed, a notice or another module links to.

Mail builders, pages and tests ask here for a URL instead of spelling it out, so an email can
never point at a page that does not exist: the routes are declared with the same patterns
(`*_PATTERN`), and a rename is one edit (tests/web/test_paths.py asks the router for each). A
staff page's own sub-actions (`…/approve`, `…/cancel`) are built from these by its module. Functions return paths; `absolute` prefixes the
configured NEWSLETTER_BASE_URL for links that leave the app (emails, feeds).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from newsletter.settings import get_settings

HOME = "/"
ARCHIVE = "/issues"
FEED = "/issues/feed.atom"
SUBSCRIBE = "/subscribe"
LOGIN = "/login"
EDITOR_ISSUES = "/admin/issues"
ADMIN_HOME = "/admin"
ADMIN_SUBSCRIBERS = "/admin/subscribers"
ADMIN_SUPPRESSIONS = "/admin/suppressions"
ADMIN_USERS = "/admin/users"
ADMIN_SEGMENTS = "/admin/segments"
ACCOUNT = "/account"

EDITOR_ISSUE_PATTERN = "/admin/issues/{issue_id}"
WEB_VERSION_PATTERN = "/issues/{week}"
PUBLIC_VOTE_PATTERN = "/issues/{week}/vote/{slug}"

# A reader's own links: the first segment after the prefix is a link credential (a signed
# token), which the access log shortens (web/accesslog.py).
CONFIRM_PATTERN = "/confirm/{token}"
UNSUBSCRIBE_PATTERN = "/u/{token}"
PREFERENCES_PATTERN = "/p/{token}"
STILL_READING_PATTERN = "/p/{token}/still-reading"
PIXEL_PATTERN = "/o/{token}.gif"
CLICK_PATTERN = "/c/{token}/{link_key}"
VOTE_PATTERN = "/v/{token}/{slug}/{tool}"
# The prefixes of the patterns above, in the same order.
TOKEN_PREFIXES = ("/confirm/", "/u/", "/p/", "/o/", "/c/", "/v/")
# Links a mail client's scanner follows by itself: answered only to GET, never to HEAD, so a
# prefetch records nothing that a person did not do (web/head.py).
HIT_PREFIXES = ("/o/", "/c/", "/v/")


def absolute(path: str) -> str:
    return get_settings().newsletter_base_url.rstrip("/") + path


def admin_subscriber(subscriber_id: int) -> str:
    """The admin's page about one subscriber."""
    return f"{ADMIN_SUBSCRIBERS}/{subscriber_id}"


def editor_issue(issue_id: int) -> str:
    """Where an editor previews, edits, approves and schedules one issue."""
    return EDITOR_ISSUE_PATTERN.format(issue_id=issue_id)


def web_version(week: str) -> str:
    """The public "view in browser" page of a published issue."""
    return WEB_VERSION_PATTERN.format(week=quote(week, safe=""))


def public_vote(week: str, slug: str) -> str:
    """Where a vote button on the public web version leads (the page explains how to vote)."""
    return PUBLIC_VOTE_PATTERN.format(week=quote(week, safe=""), slug=quote(slug, safe=""))


# Tokens are URL-safe by construction (base64url and `.`; the placeholder is letters and `_`),
# so they go into a path as they are.


def confirm(token: str) -> str:
    return CONFIRM_PATTERN.format(token=token)


def unsubscribe(token: str) -> str:
    return UNSUBSCRIBE_PATTERN.format(token=token)


def preferences(token: str) -> str:
    return PREFERENCES_PATTERN.format(token=token)


def pixel(token: str) -> str:
    return PIXEL_PATTERN.format(token=token)


def click(token: str, link_key: str) -> str:
    return CLICK_PATTERN.format(token=token, link_key=link_key)


def vote(token: str, slug: str, tool: int) -> str:
    return VOTE_PATTERN.format(token=token, slug=quote(slug, safe=""), tool=tool)


def matcher(pattern: str) -> re.Pattern[str]:
    """A pattern as a regular expression matching a whole path, one group per `{name}` (a
    segment): how the tracking middleware answers the pixel and the click before routing."""
    parts = re.split(r"\{[a-z_]+\}", pattern)
    return re.compile("([^/]+)".join(re.escape(part) for part in parts))


def still_reading(token: str) -> str:
    """Where the "still want this?" mail's button leads (a page with the button that answers)."""
    return STILL_READING_PATTERN.format(token=token)


def admin_segment(segment_id: int) -> str:
    return f"{ADMIN_SEGMENTS}/{segment_id}"
