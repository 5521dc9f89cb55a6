"""A small world as the demo leaves it, made through the real doors: subscribers, an issue built
from the seed pages and sent through the ledger to the outbox, and the links read back out of
the .eml files the way a mail client would see them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

from newsletter.db import transaction
from tests.live_server import free_port as free_port  # re-exported for the browser tests
from tests.live_server import serving

URL_IN_TEXT = re.compile(r"https?://[^\s<>\"')]+")


def send_issue(issue_id: int, readers: list[str]) -> None:
    """Approve the issue and send it to `readers` through the ledger (the outbox transport)."""
    from newsletter.issues.service import approve
    from newsletter.sending.service import default_worker_id, start_send
    from newsletter.sending.worker import run_until_done
    from subscribers.service import add_by_admin

    with transaction() as session:
        for address in readers:
            add_by_admin(session, address, address.split("@")[0].title(), source="test")
        approve(session, issue_id, by="editor@example.com")
        assert start_send(session, issue_id)
    run_until_done(issue_id, worker_id=default_worker_id())


def mails(folder: Path) -> list[EmailMessage]:
    found = []
    for path in sorted(folder.glob("*.eml")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        found.append(message)
    return found


def body(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    content = part.get_content()
    assert isinstance(content, str)
    return content


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"a": "href", "img": "src", "iframe": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def hrefs(html: str) -> list[str]:
    parser = _Hrefs()
    parser.feed(html)
    return parser.urls


def links_in(message: EmailMessage) -> list[str]:
    """Every URL a reader of this message can reach: the HTML part's links and images, the
    text part's URLs, and the List-Unsubscribe header (what the mail client's button opens)."""
    urls: list[str] = []
    html = body(message, "html")
    if html is not None:
        for href in hrefs(html):
            if href.startswith("#"):
                # A jump within the mail (the overview to its section): its target must exist.
                target = href[1:]
                assert re.search(rf'\bid="{re.escape(target)}"', html), f"no #{target} in the mail"
                continue
            urls.append(href)
    text = body(message, "plain")
    if text is not None:
        urls += URL_IN_TEXT.findall(text)
    # As a mail client reads it (RFC 2369): the raw header, unfolded; encoded words (RFC 2047)
    # are not allowed there, so a URL hidden in one is a button that does nothing.
    for name, raw in message.raw_items():
        if name.lower() == "list-unsubscribe":
            unfolded = re.sub(r"\r?\n[ \t]+", "", str(raw))
            found = re.findall(r"<(https?://[^>]+)>", unfolded)
            assert found, f"List-Unsubscribe holds no URL a client can read: {unfolded!r}"
            urls += found
    return list(dict.fromkeys(urls))


def recipient(message: EmailMessage) -> str:
    """The To: address alone (the header also carries the subscriber's name)."""
    return str(message["To"].addresses[0].addr_spec)


@contextmanager
def live_server(port: int) -> Iterator[str]:
    """The app under uvicorn on a loopback port, in a thread: the browser goes through HTTP."""
    from newsletter.web.app import create_app

    with serving(create_app(), port) as base:
        yield base
