"""The web app: editor, admin, public pages, tracking endpoints and webhooks (FastAPI)."""

from __future__ import annotations

from fastapi import FastAPI

from newsletter import __version__


def create_app() -> FastAPI:
    app = FastAPI(title="Weekly AI Tool Verdicts", version=__version__)
    # Each domain contributes its router here.
    return app
