"""A changed secret key never silently forgets who left or was erased."""

from __future__ import annotations

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from newsletter.instance import InstanceState
from newsletter.scheduling.cli import main as scheduler_main
from newsletter.settings import reset_settings
from tests.subscribers.helpers import cli


def _rotate(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()


def test_a_new_secret_key_is_refused_until_the_old_suppression_key_is_given(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = "test-secret-key-0123456789"
    assert cli("subscribers", "add", "left@example.com").exit_code == 0
    assert cli("subscribers", "unsubscribe", "left@example.com").exit_code == 0
    assert cli("subscribers", "erase", "left@example.com", "--yes").exit_code == 0

    _rotate(monkeypatch, NEWSLETTER_SECRET_KEY="a-brand-new-secret-key-9876543210")
    refused = cli("subscribers", "add", "left@example.com")
    assert refused.exit_code == 2
    assert (
        "NEWSLETTER_SECRET_KEY" in refused.output and "NEWSLETTER_SUPPRESSION_KEY" in refused.output
    )
    assert scheduler_main(["--once"]) == 2
    assert cli("subscribers", "list", "--json").exit_code == 2

    _rotate(monkeypatch, NEWSLETTER_SUPPRESSION_KEY=old)
    again = cli("subscribers", "add", "left@example.com")
    assert again.exit_code != 0 and "suppressed" in again.output  # still remembered


def test_a_database_from_before_the_fingerprint_is_checked_against_its_rows(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("subscribers", "add", "kept@example.com").exit_code == 0
    db.execute(delete(InstanceState).where(InstanceState.name == "suppression_key_fingerprint"))
    db.commit()
    _rotate(monkeypatch, NEWSLETTER_SECRET_KEY="a-brand-new-secret-key-9876543210")
    assert cli("subscribers", "list").exit_code == 2
