"""Where the Jinja2 templates live, in a checkout and in an installed wheel."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_PACKAGE = Path(__file__).resolve().parent
# A checkout (and an editable install) has templates/ beside the package; a wheel carries a copy
# as newsletter/_templates (see pyproject.toml).
TEMPLATES_DIR = next(
    (p for p in (_PACKAGE.parent / "templates", _PACKAGE / "_templates") if p.is_dir()),
    _PACKAGE.parent / "templates",
)


@lru_cache(maxsize=1)
def web_environment() -> Environment:
    """Autoescaping HTML environment for the web app's pages."""
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html", "xml", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
