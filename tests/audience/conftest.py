"""The web app's fixtures (signed-in staff), for the segments' pages and API."""

from tests.web.conftest import admin, app, editor, staff

__all__ = ["admin", "app", "editor", "staff"]
