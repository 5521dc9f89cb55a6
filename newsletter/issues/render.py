"""Turn an issue's content into the email a subscriber receives: subject, preheader, HTML, text.

The issue is rendered once, with `__NL_TOKEN__` standing for the recipient: every per-recipient
URL is built from it, so sending 50 000 copies costs one render. Outbound links go through the
click redirect (`/c/<token>/<key>`) only in the tracked variant, and every one of them is listed
in `links` so the redirect can refuse anything the issue does not contain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from newsletter import paths
from newsletter.issues.verdicts import Verdict
from newsletter.rendering.mjml import compile_mjml
from newsletter.security.delivery_tokens import TOKEN_PLACEHOLDER
from newsletter.sender import Sender, sender
from newsletter.templating import TEMPLATES_DIR
from newsletter.votes.panel import ReadersVsPanel

HTML_TEMPLATE = "email/issue.mjml.j2"
TEXT_TEMPLATE = "email/issue.txt.j2"


@dataclass(frozen=True)
class RenderedIssue:
    subject: str
    preheader: str
    html: str
    text: str


@dataclass(frozen=True)
class FeaturedMatchup:
    verdict: Verdict
    summary: str  # the editor's words when they wrote some, else the computed sentences
    edited: bool


@dataclass(frozen=True)
class IssueContent:
    week: str
    subject: str
    preheader: str
    intro: str
    storylines: list[str]
    featured: list[FeaturedMatchup]
    more: list[Verdict]
    # What readers voted on the previous issue beside the panel's picks (None: no votes).
    readers: ReadersVsPanel | None = None
    sender: Sender = field(default_factory=sender)


@dataclass(frozen=True)
class OutboundLink:
    key: str
    url: str
    label: str
    matchup_id: int | None


@dataclass
class LinkBook:
    """Builds every URL of one render and remembers the outbound ones."""

    base_url: str
    site_url: str
    tracked: bool
    # The public web version: nobody's links (no unsubscribe, preferences or pixel), votes go
    # to the public vote page, and the footer invites the reader to subscribe.
    public: bool = False
    week: str = ""
    links: dict[str, OutboundLink] = field(default_factory=dict)

    def out(self, url: str, label: str, matchup_id: int | None = None) -> str:
        key = "l" + hashlib.sha256(url.encode()).hexdigest()[:15]
        self.links.setdefault(key, OutboundLink(key, url, label, matchup_id))
        if not self.tracked:
            return url
        return self.base_url + paths.click(TOKEN_PLACEHOLDER, key)

    def matchup(self, verdict: Verdict, label: str | None = None) -> str:
        return self.out(
            f"{self.site_url}/matchups/{verdict.slug}",
            label or f"Read the full matchup: {verdict.title}",
            verdict.matchup_id,
        )

    def site(self) -> str:
        return self.out(f"{self.site_url}/", "Weekly AI Tool Verdicts")

    def browser(self, week: str) -> str:
        return self.out(self.base_url + paths.web_version(week), "View in browser")

    def subscribe(self) -> str:
        return self.base_url + paths.SUBSCRIBE

    def archive(self) -> str:
        return self.base_url + paths.ARCHIVE

    def vote(self, verdict: Verdict, tool: int) -> str:
        if self.public:
            return self.base_url + paths.public_vote(self.week, verdict.slug) + f"#tool-{tool}"
        return self.base_url + paths.vote(TOKEN_PLACEHOLDER, verdict.slug, tool)

    def unsubscribe(self) -> str:
        return self.base_url + paths.unsubscribe(TOKEN_PLACEHOLDER)

    def preferences(self) -> str:
        return self.base_url + paths.preferences(TOKEN_PLACEHOLDER)

    def pixel(self) -> str | None:
        return self.base_url + paths.pixel(TOKEN_PLACEHOLDER) if self.tracked else None


@lru_cache(maxsize=1)
def _html_environment() -> Environment:
    # Every page value reaches MJML escaped: MRML passes mj-text content through as HTML.
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=1)
def _text_environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=False,  # noqa: S701 - the text part is plain text, never read as markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_mjml(content: IssueContent, book: LinkBook) -> str:
    return (
        _html_environment()
        .get_template(HTML_TEMPLATE)
        .render(issue=content, links=book, sender=content.sender)
    )


def render_issue(
    content: IssueContent, *, base_url: str, site_url: str, tracked: bool, public: bool = False
) -> tuple[RenderedIssue, list[OutboundLink]]:
    """`public` renders the web version (untracked, nobody's links); otherwise a subscriber's
    copy, tracked or not."""
    book = LinkBook(
        base_url.rstrip("/"), site_url.rstrip("/"), tracked and not public, public, content.week
    )
    html = compile_mjml(render_mjml(content, book), inline_css=False)
    text = (
        _text_environment()
        .get_template(TEXT_TEMPLATE)
        .render(issue=content, links=book, sender=content.sender)
    )
    rendered = RenderedIssue(
        subject=content.subject, preheader=content.preheader, html=html, text=_tidy(text)
    )
    return rendered, list(book.links.values())


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip() + "\n"
