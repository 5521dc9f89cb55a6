"""Schemathesis against the app's own OpenAPI: whatever it sends, the app never answers 5xx,
and every answer matches the schema the OpenAPI documents for it (clients are generated from it).

Every operation the schema describes (the staff JSON API with a real admin token, and the
public subscribe/confirm/unsubscribe/preferences routes), with generated valid and invalid
parameters and bodies, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.generation import GenerationMode

from newsletter.accounts.models import Role
from newsletter.accounts.service import create_user, issue_api_token
from newsletter.db import transaction
from tests.prove.conftest import EXAMPLES


@pytest.fixture
def api_token(db_url: str) -> str:
    from subscribers import service as subscribers

    with transaction() as session:
        user = create_user(session, "admin@example.com", "correct horse battery staple", Role.ADMIN)
        token = issue_api_token(session, user)
        # Something for the reads, the unsubscribes and the erasures to find.
        for i in range(5):
            subscribers.add_by_admin(session, f"reader{i}@example.com", f"Reader {i}")
    return token


def test_no_request_makes_the_app_fail(db_url: str, api_token: str) -> None:
    from newsletter.web.app import create_app

    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # the staff API and the public routes are all described
    strategy = st.one_of(
        *(
            operation.as_strategy(generation_mode=mode)
            for operation in operations
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        )
    )
    seen: set[str] = set()

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES * len(operations),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def call(case: schemathesis.Case) -> None:
        seen.add(case.operation.label)
        response = case.call(headers={"Authorization": f"Bearer {api_token}"})
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    call()
    assert len(seen) >= len(operations) // 2
