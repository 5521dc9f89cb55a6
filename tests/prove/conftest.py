"""Fixtures for the proving suite.

Fuzzing depth: the default profile keeps `make test` quick; `HYPOTHESIS_PROFILE=deep` (what
`make check-all` sets) runs ten times as many examples.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

from tests.sending.conftest import sendgrid

__all__ = ["EXAMPLES", "sendgrid"]

# database=None: no example database written into the work tree.
settings.register_profile(
    "default",
    database=None,
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "deep",
    database=None,
    deadline=None,
    max_examples=1000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)
# Examples per API operation for schemathesis, each a real request through the app.
EXAMPLES = 100 if PROFILE == "deep" else 20

# The web suite's app and signed-in clients, for the pages these tests look at.
from tests.web.conftest import admin, anon, app, editor, staff  # noqa: E402

__all__ += ["admin", "anon", "app", "editor", "staff"]
