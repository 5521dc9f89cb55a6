"""The published development key is refused by every process that signs whenever the base URL
is not a local one, with an error naming NEWSLETTER_SECRET_KEY; it still works on localhost."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from newsletter.cli import app as cli
from newsletter.security.keys import InsecureSecretKey
from newsletter.settings import reset_settings

runner = CliRunner()


@pytest.fixture
def published_key_in_public(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)  # the default: the published key
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "https://news.example")
    reset_settings()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--host", "127.0.0.1"],  # behind a proxy on the same host
        ["subscribers", "add", "reader@example.com", "--confirm"],
        ["issue", "send", "1"],
        ["issue", "worker", "1"],
    ],
)
def test_every_command_refuses_the_published_key_with_a_public_base_url(
    published_key_in_public: None, args: list[str]
) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code != 0
    assert "NEWSLETTER_SECRET_KEY" in result.output and "NEWSLETTER_BASE_URL" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_scheduler_and_the_app_refuse_it_too(published_key_in_public: None) -> None:
    from newsletter.scheduling.cli import main
    from newsletter.security.signing import sign
    from newsletter.web.app import create_app

    assert main(["--once"]) == 2
    with pytest.raises(InsecureSecretKey, match="NEWSLETTER_SECRET_KEY"):
        create_app()
    with pytest.raises(InsecureSecretKey):
        sign("subscriber", "1")  # a worker started any other way cannot sign either


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "base", ["http://localhost:8000", "http://127.0.0.1:8000", "http://[::1]:8000"]
)
def test_the_published_key_still_works_on_a_local_base_url(
    monkeypatch: pytest.MonkeyPatch, db_url: str, base: str
) -> None:
    from newsletter.web.app import create_app

    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    monkeypatch.setenv("NEWSLETTER_BASE_URL", base)
    reset_settings()
    create_app()
    result = runner.invoke(cli, ["subscribers", "add", "reader@example.com"])
    assert result.exit_code == 0, result.output
