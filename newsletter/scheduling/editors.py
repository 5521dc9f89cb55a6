"""Emails to the editors (NEWSLETTER_EDITOR_EMAILS): "ready for review", "nothing this week"."""

from __future__ import annotations

import html
import logging
import re

from newsletter import paths
from newsletter.sending.service import send_notice
from newsletter.settings import get_settings

log = logging.getLogger("newsletter.scheduler")


def preview_url(issue_id: int) -> str:
    """The editor's page for the issue, from the module that also declares its route."""
    return paths.absolute(paths.editor_issue(issue_id))


_URL = re.compile(r"https?://[^\s<>\"]+[^\s<>\".,;:!?)]")


def _linked(paragraph: str) -> str:
    """The paragraph as HTML, its URLs as links (the preview link must be one click)."""
    escaped = html.escape(paragraph)
    return _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)


def notify_editors(subject: str, text: str) -> list[str]:
    """Send one plain notice to each editor; returns who got it.

    A notice that cannot be sent is logged, never raised: the weekly job's real work (the
    draft in the database) is already done and must not be rolled back for an email.
    """
    editors = get_settings().editor_emails
    if not editors:
        log.warning("editors: no NEWSLETTER_EDITOR_EMAILS set; notice %r not sent", subject)
        return []
    body_html = "".join(f"<p>{_linked(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n"))
    try:
        results = send_notice(
            editors, subject, text, f"<!doctype html><html><body>{body_html}</body></html>"
        )
    except Exception:
        log.exception("editors: notice %r could not be sent", subject)
        return []
    notified = []
    for address, result in zip(editors, results, strict=True):
        if result.ok:
            notified.append(address)
        else:
            log.error("editors: notice %r to %s refused: %s", subject, address, result.error)
    if notified:
        log.info("editors: sent %r to %s", subject, ", ".join(notified))
    return notified
