"""Every public path newsletter/paths.py spells is one the app serves: the mail builders and
the routes read the same patterns, so a rename cannot leave a link pointing nowhere."""

from __future__ import annotations

from starlette.routing import Match

from newsletter import paths
from newsletter.web.app import create_app
from newsletter.web.tracking_middleware import TrackingHitsMiddleware

# Answered before routing by the tracking middleware (the hottest URLs the app serves).
BEFORE_ROUTING = {paths.PIXEL_PATTERN, paths.CLICK_PATTERN}


def _routed(app: object, path: str) -> bool:
    """Whether a route of the app (not its 404) takes a GET or POST of `path`."""
    for method in ("GET", "POST"):
        scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        for route in app.routes:  # type: ignore[attr-defined]
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return True
    return False


def test_every_pattern_in_paths_is_a_route_or_the_tracking_middleware() -> None:
    app = create_app()
    patterns = {
        value
        for name, value in vars(paths).items()
        if name.isupper() and isinstance(value, str) and value.startswith("/")
    }
    assert len(patterns) >= 15
    values = {
        "token": "abc.def",
        "link_key": "k1",
        "issue_id": "3",
        "week": "2026-W01",
        "slug": "a-vs-b",
        "what": "vote",
        "tool": "1",
    }
    unrouted = {p for p in patterns - BEFORE_ROUTING if not _routed(app, p.format(**values))}
    assert unrouted == set()
    assert not _routed(app, "/no/such/page")  # the probe can say no
    assert not any(_routed(app, p.format(**values)) for p in BEFORE_ROUTING)
    assert any(m.cls is TrackingHitsMiddleware for m in app.user_middleware)
    for pattern in BEFORE_ROUTING:
        filled = pattern.format(token="abc.def", link_key="k1")
        assert paths.matcher(pattern).fullmatch(filled)
        assert not paths.matcher(pattern).fullmatch(filled + "/more")
    assert set(paths.HIT_PREFIXES) <= set(paths.TOKEN_PREFIXES)
    for pattern in (paths.CONFIRM_PATTERN, paths.UNSUBSCRIBE_PATTERN, paths.PREFERENCES_PATTERN):
        assert pattern.split("{")[0] in paths.TOKEN_PREFIXES


def test_the_per_reader_builders_fill_their_patterns() -> None:
    assert paths.unsubscribe("T") == "/u/T"
    assert paths.preferences("T") == "/p/T"
    assert paths.confirm("T") == "/confirm/T"
    assert paths.pixel("T") == "/o/T.gif"
    assert paths.click("T", "l3") == "/c/T/l3"
    assert paths.vote("T", "a b/c", 1) == "/v/T/a%20b%2Fc/1"
