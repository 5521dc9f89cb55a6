"""The rendered email: escaping, size, accessibility basics, placeholders, the text part."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.issues.render import HTML_TEMPLATE, LinkBook, render_issue, render_mjml
from newsletter.security.delivery_tokens import TOKEN_PLACEHOLDER
from tests.issues.helpers import content_for, example_pages, renamed, seed_pages, ten_matchups

BASE = "https://news.example"
SITE = "https://site.example"
WIDTHS = (320, 375, 600)


def _render(datas, *, tracked=True, cap=10):  # type: ignore[no-untyped-def]
    return render_issue(content_for(datas, cap), base_url=BASE, site_url=SITE, tracked=tracked)


def test_page_values_are_escaped_in_html_and_safe_in_headers() -> None:
    hostile = renamed(
        seed_pages()[0],
        "Ampersand & <Co>",
        "Plain Tool",
        tagline='<script>alert("x")</script> & friends',
    )
    rendered, _ = _render([hostile, *example_pages()])
    assert "<script>alert" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; friends" in rendered.html
    assert "Ampersand &amp; &lt;Co&gt;" in rendered.html
    assert "<Co>" not in rendered.html
    # Stackwise's tagline on the example page has "&" and "<pane>".
    assert "Diffs &amp; reviews in one &lt;pane&gt;, not five tabs" in rendered.html
    # The text part is plain text: the values read as written.
    assert '<script>alert("x")</script> & friends' in rendered.text
    assert "\r" not in rendered.subject and "\n" not in rendered.subject


def test_ten_matchups_stay_under_gmail_clipping() -> None:
    rendered, _ = _render(ten_matchups(), cap=10)
    size = len(rendered.html.encode())
    assert size < 100_000, f"{size} bytes"
    assert rendered.html.count("Read the full matchup:") == 10


def test_html_basics_lang_preheader_dark_mode_alt_and_only_our_images() -> None:
    content = content_for(example_pages())
    rendered, _ = _render(example_pages())
    html = rendered.html
    assert re.search(r'<html[^>]* lang="en"', html)
    assert '<meta name="color-scheme" content="light dark"' in html
    assert "prefers-color-scheme: dark" in html
    assert content.preheader.replace("'", "&#39;") in html
    images = re.findall(r"<img\b[^>]*>", html)
    assert images, "the tracked variant carries the open pixel"
    for img in images:
        assert 'alt="' in img
        src = re.search(r'src="([^"]+)"', img)
        assert src and src.group(1).startswith(BASE + "/"), img
    for anchor in re.findall(r"<a\b[^>]*>(.*?)</a>", html, flags=re.S):
        assert re.sub(r"<[^>]+>", "", anchor).strip(), "every link has a visible name"


def test_tracked_and_untracked_variants() -> None:
    tracked, links = _render(example_pages(), tracked=True)
    untracked, _ = _render(example_pages(), tracked=False)
    token = TOKEN_PLACEHOLDER
    assert f"{BASE}/o/{token}.gif" in tracked.html
    assert f"{BASE}/o/" not in untracked.html
    assert f"{BASE}/c/" not in untracked.html and f"{BASE}/c/" not in untracked.text
    for variant in (tracked, untracked):
        for part in (variant.html, variant.text):
            assert f"{BASE}/u/{token}" in part
            assert f"{BASE}/p/{token}" in part
            assert f"{BASE}/v/{token}/quillmate-vs-proseforge/0" in part
            assert f"{BASE}/v/{token}/quillmate-vs-proseforge/1" in part
    keys = {link.key for link in links}
    clicked = set(re.findall(rf"{BASE}/c/{token}/([A-Za-z0-9_-]+)", tracked.html + tracked.text))
    assert clicked and clicked <= keys
    urls = {link.url for link in links}
    assert f"{SITE}/matchups/quillmate-vs-proseforge" in urls
    assert f"{BASE}/issues/2026-W10" in urls
    # The untracked variant links straight to the same recorded destinations.
    for href in re.findall(r'href="([^"]+)"', untracked.html):
        per_recipient = tuple(f"{BASE}/{kind}/{token}" for kind in ("u", "p", "v"))
        # "#m-…" jumps from the overview to a matchup's section, inside the email.
        assert href in urls or href.startswith((*per_recipient, "#m-", "#nl-more")), href


def test_mjml_template_compiles_without_leftovers() -> None:
    content = content_for(example_pages(), cap=3)
    source = render_mjml(content, LinkBook(BASE, SITE, tracked=True))
    assert source.lstrip().startswith("<mjml")
    rendered, _ = _render(example_pages(), cap=3)
    for part in (rendered.html, rendered.text):
        assert "{{" not in part and "{%" not in part and "}}" not in part
    assert "<mj-" not in rendered.html and "</mj-" not in rendered.html
    assert Path(HTML_TEMPLATE).suffix == ".j2"


def test_text_part_is_written_not_dumped() -> None:
    rendered, _ = _render(example_pages(), cap=3)
    text = rendered.text
    assert not re.search(r"<(p|div|table|a|td)\b", text)
    assert "WEEKLY AI TOOL VERDICTS — issue 2026-W10" in text
    assert "A landslide: Loomtide takes 100% of the panel's ship votes, Framecast none." in text
    assert "And the winner costs nothing: Loomtide is free, Framecast freemium." in text
    # The lead is Quillmate's record, told once: tally and scores in the opening, and no
    # storyline block saying it again.
    opening = text.split("\n\n", 2)[1]
    assert opening.startswith(
        "Quillmate faced 3 challengers this week: 1 win, 1 loss, 1 tie. It beats Proseforge "
        "(75% to 50%), loses to Inkwell Duo (50% to 75%), and ties with Red vs Blue Critic "
        "(both 50%). The panel judged"
    ), opening
    assert "THE STORYLINE" not in text and text.count("Quillmate faces") == 0
    glance = text.split("THIS WEEK AT A GLANCE", 1)[1].split("-----", 1)[0]
    assert "1. Loomtide vs Framecast: panel pick Loomtide (100% to 0%)" in glance
    assert "7. Quillmate vs Red vs Blue Critic: level on the panel\n" in glance
    assert "MORE THIS WEEK" in text
    # The cap (3) puts the other four in the compact list: nothing is silently dropped.
    more = text.split("MORE THIS WEEK", 1)[1]
    assert more.count("\n* ") == 4
    assert f"Unsubscribe: {BASE}/u/{TOKEN_PLACEHOLDER}" in text


@pytest.mark.browser
def test_no_horizontal_scroll_at_phone_and_desktop_widths(
    browser, artifacts: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    datas = [*example_pages(), *ten_matchups()[:3]]
    rendered, _ = _render(datas, cap=8)
    page_file = tmp_path / "issue.html"
    page_file.write_text(rendered.html, encoding="utf-8")
    context = browser.new_context(java_script_enabled=True)
    try:
        for width in WIDTHS:
            page = context.new_page()
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(page_file.as_uri())
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, f"{scroll_width}px wide at a {width}px viewport"
            # Every vote button is fully on screen horizontally.
            right_edges = page.eval_on_selector_all(
                "a.nl-vote", "els => els.map(e => e.getBoundingClientRect().right)"
            )
            assert right_edges and max(right_edges) <= width
            page.screenshot(path=str(artifacts / f"issue-{width}px.png"), full_page=True)
            page.close()
    finally:
        context.close()
