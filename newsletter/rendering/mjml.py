"""The one module that compiles MJML (mjml-python, a binding of the Rust MRML compiler).

MRML neither validates nor inlines `<mj-style inline="inline">`, so templates keep their styles
in MJML attributes; anything left in `<style>` blocks is inlined here with css-inline.
"""

from __future__ import annotations

import css_inline
import mjml


class MjmlError(ValueError):
    pass


def compile_mjml(source: str, *, inline_css: bool = True) -> str:
    """HTML from MJML. `inline_css=False` is for templates that already carry every style
    inline: inlining MJML's own reset rules onto each cell costs ~1 KB per matchup, and the
    weekly issue must stay under Gmail's ~102 KB clipping limit."""
    try:
        html: str = mjml.mjml2html(source)
    except Exception as exc:  # MRML raises its own error type for malformed input
        raise MjmlError(f"MJML did not compile: {exc}") from exc
    if not inline_css:
        return html
    inliner = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)
    return str(inliner.inline(html))
