"""A domain's refusal that no route caught is answered with its sentence (409, or 404 for
something that does not exist), as a page for people and JSON for programs; never a 500."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from newsletter.errors import NotFound, Refused
from newsletter.issues.service import IssueError, IssueNotFound
from newsletter.sending.service import SendError
from newsletter.web.app import create_app
from subscribers.addresses import InvalidAddress
from subscribers.service import SubscriberError


def _app() -> FastAPI:
    app = create_app()  # its handlers, templates and middleware; two routes added below

    @app.get("/page/{kind}")
    @app.get("/api/v1/{kind}")
    def raising(kind: str) -> None:
        raise {
            "issue": IssueError("issue 3 is sent; only a draft can be edited"),
            "send": SendError("issue 3 is sent, not sending: nothing to pause"),
            "address": InvalidAddress("'x' is not an email address"),
            "subscriber": SubscriberError("already subscribed"),
            "missing": IssueNotFound("no issue with id 9"),
        }[kind]

    return app


def test_every_domain_error_is_a_refusal() -> None:
    for error in (IssueError, SendError, InvalidAddress, SubscriberError):
        assert issubclass(error, Refused) and not issubclass(error, NotFound)
    assert issubclass(IssueNotFound, NotFound)


def test_an_uncaught_refusal_is_its_sentence_not_a_500() -> None:
    client = TestClient(_app(), raise_server_exceptions=False)
    api = client.get("/api/v1/send")
    assert api.headers["content-type"].startswith("application/json")
    assert api.status_code == 409
    assert api.json() == {"detail": "issue 3 is sent, not sending: nothing to pause"}
    assert client.get("/api/v1/missing").status_code == 404

    page = client.get("/page/issue", headers={"Accept": "text/html"})
    assert page.status_code == 409 and "text/html" in page.headers["content-type"]
    assert "issue 3 is sent; only a draft can be edited" in page.text
    assert "Traceback" not in page.text


def test_an_issue_id_that_names_nothing_is_a_404_at_the_api(
    editor: TestClient, staff: None
) -> None:
    import json

    from typer.testing import CliRunner

    from newsletter.cli import app
    from tests.web.conftest import ADMIN

    token = json.loads(CliRunner().invoke(app, ["users", "token", ADMIN, "--json"]).stdout)
    auth = {"Authorization": f"Bearer {token['token']}"}
    for method, path in (
        ("get", "/api/v1/issues/4242"),
        ("post", "/api/v1/issues/4242/approve"),
        ("post", "/api/v1/issues/4242/cancel"),
        ("get", "/api/v1/issues/4242/stats"),
    ):
        answer = editor.request(method.upper(), path, headers=auth)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json() == {"detail": "no issue with id 4242"}
