"""The journeys of issue 13, walked in real Chromium over HTTP against a live uvicorn server on
the world `newsletter demo` leaves (a sent issue, a draft, staff accounts), plus a reader who
subscribes from the home page and an editor's test send.

Links are found by crawling, never listed: every URL in every .eml of the outbox (HTML and text
parts, List-Unsubscribe), then the public pages breadth-first from `/`, then the staff pages
breadth-first from the navigation, as admin and as editor. Each must end on a working page
(status < 400, no console error, no serious axe violation). GETs never act (unsubscribe and
erase show a confirmation page), and the crawler never submits a form, so following the
destructive links cannot destroy the crawl.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from newsletter.settings import get_settings, reset_settings
from tests.web.world import free_port, hrefs, links_in, live_server, mails

pytestmark = pytest.mark.browser

MAX_PAGES = 150  # per crawl: far above what the world has, so a loop fails instead of hanging
SKIP = ("/logout", "/static/")


@pytest.fixture
def demo_world(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser: Any
) -> Iterator[dict[str, Any]]:
    from newsletter.demo import run_demo

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'newsletter.db'}")
    monkeypatch.setenv("NEWSLETTER_INBOX_DIR", str(tmp_path / "inbox"))
    monkeypatch.setenv("NEWSLETTER_EDITOR_EMAILS", "editor@example.com")
    monkeypatch.setenv("NEWSLETTER_BASE_URL", base)
    reset_settings()
    result = run_demo()
    with live_server(port):
        yield {"base": base, "demo": result, "outbox": tmp_path / "outbox"}


class Walker:
    """Opens URLs in one browser context and records what is wrong with each."""

    def __init__(self, browser: Any, base: str, artifacts: Path) -> None:
        self.base = base
        self.site = get_settings().newsletter_site_url.rstrip("/")
        # axe-core is injected as a script: the pages' own policy (no script at all on the
        # web version) would stop it, so the harness, and only it, is let past the CSP.
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.page.on(
            "console", lambda m: self.console.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.console.append(str(e)))
        self.problems: list[str] = []
        self.checked_shapes: set[str] = set()
        self.artifacts = artifacts / "web" / "journeys"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.opened: list[str] = []

    def ours(self, url: str) -> bool:
        return url.startswith(self.base + "/") or url == self.base

    def open(self, url: str) -> str | None:
        """Follow one link as a person would; returns the page's HTML (None if not HTML)."""
        if not self.ours(url):
            # Only the comparison site's pages leave the service (matchup links, the brand).
            if not url.startswith(self.site + "/"):
                self.problems.append(f"{url}: a link to somewhere other than the site")
            return None
        answer = self.context.request.get(url, max_redirects=0)
        hops = 0
        while 300 <= answer.status < 400 and hops < 5:
            target = urljoin(url, answer.headers["location"])
            if not self.ours(target):
                if not target.startswith(self.site + "/"):
                    self.problems.append(f"{url}: redirects off-site to {target}")
                return None
            url, hops = target, hops + 1
            answer = self.context.request.get(url, max_redirects=0)
        self.opened.append(url)
        if answer.status >= 400:
            self.problems.append(f"{url}: HTTP {answer.status}")
            return None
        if not answer.headers.get("content-type", "").startswith("text/html"):
            return None
        self.console.clear()
        response = self.page.goto(url)
        if response is None or response.status >= 400:
            self.problems.append(f"{url}: the browser got {response and response.status}")
            return None
        self.page.wait_for_load_state("load")
        html: str = self.page.content()
        if "Traceback" in html or "Internal Server Error" in html:
            self.problems.append(f"{url}: an error page")
        if self.console:
            self.problems.append(f"{url}: console errors {self.console[:3]}")
        self._axe(url)
        return html

    def _axe(self, url: str) -> None:
        from axe_playwright_python.sync_playwright import Axe

        # One check per kind of page: ids and tokens vary, the template does not.
        shape = re.sub(r"/[A-Za-z0-9_-]{20,}|/\d+", "/*", urlsplit(url).path)
        if shape in self.checked_shapes:
            return
        self.checked_shapes.add(shape)
        name = re.sub(r"[^a-z0-9]+", "-", shape.lower()).strip("-") or "home"
        self.page.screenshot(path=str(self.artifacts / f"{name}.png"), full_page=True)
        results = Axe().run(self.page)
        for v in results.response["violations"]:
            if v["impact"] in ("serious", "critical"):
                self.problems.append(f"{url}: axe {v['id']} ({v['impact']}): {v['help']}")

    def crawl(self, start: list[str]) -> int:
        """Breadth-first over same-origin links (and frames) from `start`; GET only."""
        seen = set(start)
        queue = deque(start)
        while queue:
            assert len(seen) <= MAX_PAGES, f"more than {MAX_PAGES} pages: {sorted(seen)[:20]}"
            url = queue.popleft()
            html = self.open(url)
            if html is None:
                continue
            for href in hrefs(html):
                target = urljoin(url, href).split("#")[0]
                path = urlsplit(target).path
                if not self.ours(target) or path.startswith(SKIP) or target in seen:
                    if not self.ours(target) and not target.startswith(("mailto:",)):
                        self.open(target)  # checks it points at the site
                    continue
                seen.add(target)
                queue.append(target)
        return len(seen)

    def sign_in(self, email: str, password: str) -> None:
        self.page.goto(f"{self.base}/login")
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r"/admin/issues"))

    def close(self) -> None:
        self.context.close()


def test_every_link_in_every_mail_and_every_page_works(
    demo_world: dict[str, Any], browser: Any, artifacts: Path
) -> None:
    from newsletter.db import transaction
    from newsletter.sending.service import send_test

    base, outbox, demo = demo_world["base"], demo_world["outbox"], demo_world["demo"]

    # A reader subscribes from the home page (the confirmation mail joins the outbox).
    reader = Walker(browser, base, artifacts)
    reader.page.goto(base + "/")
    reader.page.get_by_label("Email", exact=True).fill("new.reader@example.com")
    reader.page.get_by_role("button", name="Subscribe").first.click()
    reader.page.get_by_text("new.reader@example.com").first.wait_for()
    # An editor's test copy of this week's draft, to two addresses.
    with transaction() as session:
        results = send_test(session, demo.draft_issue_id, ["a@example.com", "b@example.com"])
    assert all(r.ok for _, r in results)

    messages = mails(outbox)
    kinds = {
        "issue": [m for m in messages if m["List-Unsubscribe"] and "[Test]" not in m["Subject"]],
        "test send": [m for m in messages if "[Test]" in m["Subject"]],
        "editor notice": [m for m in messages if "ready for review" in m["Subject"]],
        "confirmation": [m for m in messages if "new.reader@example.com" in str(m["To"])],
    }
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}
    mail_urls: list[str] = []
    for found in kinds.values():
        for message in found[:3]:  # each reader's copy has the same links with their token
            mail_urls += links_in(message)
    assert any("/u/" in u for u in mail_urls) and any("/v/" in u for u in mail_urls)

    # Readers: every link of every mail, then the public pages from where they lead.
    reader.crawl([*dict.fromkeys(mail_urls), base + "/", base + "/issues/feed.atom"])
    feed = reader.context.request.get(base + "/issues/feed.atom").text()
    entries = re.findall(r'<link href="([^"]+)" rel="alternate"', feed)
    entries += re.findall(r'<link rel="alternate" href="([^"]+)"', feed)
    assert any("/issues/20" in e for e in entries), feed
    reader.crawl([e for e in entries if "/issues/20" in e])
    problems = reader.problems
    assert any("/admin/" not in u for u in reader.opened)
    reader.close()

    # Staff: everything reachable from the navigation, as each role (the editor's notice link
    # is among the mail links above, followed signed out: it lands on the sign-in page).
    for email in ("admin@example.com", "editor@example.com"):
        staff = Walker(browser, base, artifacts)
        staff.sign_in(email, demo.passwords[email])
        pages = staff.crawl([base + "/admin/issues"])
        assert pages > 5
        problems += [f"as {email}: {p}" for p in staff.problems]
        if email == "editor@example.com":
            assert not any("/admin/subscribers" in u for u in staff.opened)
        else:
            assert any("/admin/subscribers/" in u and "/erase" in u for u in staff.opened)
        staff.close()

    # The crawl changed nothing: every reader is still on the list, the staff still there.
    from newsletter.accounts.repository import list_all
    from subscribers import listing

    with transaction() as session:
        counts = listing.status_counts(session)
        assert len(list_all(session)) == 2
    assert counts.get("active", 0) == 20, counts
    assert not problems, "\n".join(problems)

    # Then the new reader does confirm, with the button on the page their link opens: the
    # welcome mail that follows is crawled like every other.
    [confirmation] = kinds["confirmation"]
    link = next(u for u in links_in(confirmation) if "/confirm/" in u)
    person = Walker(browser, base, artifacts)
    person.page.goto(link)
    person.page.get_by_role("button", name="Yes, subscribe me").click()
    person.page.wait_for_load_state()
    mine = [m for m in mails(outbox) if "new.reader" in str(m["To"])]
    welcome = [m for m in mine if str(m["Subject"]).startswith("Welcome")]
    assert len(welcome) == 1, [str(m["Subject"]) for m in welcome]
    person.crawl(links_in(welcome[0]))
    assert person.opened, "the welcome mail has no link"
    assert not person.problems, "\n".join(person.problems)
    person.close()
