"""The admin moves a list from another tool in real Chromium: upload, see the detected format and
the column mapping, change a column, check with a dry run, import, read the report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from newsletter.db import transaction
from subscribers.models import Subscriber
from tests.subscribers.exports import GHOST
from tests.web.conftest import ADMIN
from tests.web.test_browser import check, page, server, sign_in  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]


def test_admin_sees_the_mapping_changes_it_and_imports(
    server: str,  # noqa: F811
    page: Any,  # noqa: F811
    artifacts: Path,
    staff: None,
    tmp_path: Path,
) -> None:
    sign_in(page, server, ADMIN)
    page.goto(f"{server}/admin/subscribers/import")
    export = tmp_path / GHOST.filename
    export.write_bytes(GHOST.content())
    page.get_by_label(re.compile("CSV file")).set_input_files(str(export))
    page.get_by_role("button", name="Upload and check the columns").click()
    page.get_by_text("Recognised as Ghost (members export).").wait_for()
    assert page.get_by_label("Email").input_value() == "email"
    assert page.get_by_label("Tags").input_value() == "labels"
    assert "subscribed_to_emails" in page.get_by_text("Also read, for who left").inner_text()
    check(page, artifacts, "admin-import-mapping")

    # The note, not the name, is what this admin wants as the person's name.
    page.get_by_label("Name", exact=True).select_option("note")
    page.get_by_role("button", name="Check first (dry run)").click()
    page.get_by_role("heading", name=re.compile("Dry run for")).wait_for()
    assert page.locator("#kept-out").inner_text() == "2"
    with transaction() as session:
        assert session.query(Subscriber).count() == 0
    assert page.get_by_label("Name", exact=True).input_value() == "note"
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_role("heading", name=f"Report for {GHOST.filename}").wait_for()
    assert page.locator("#imported").inner_text() == "1"
    assert page.locator("#kept-out").inner_text() == "2"
    outcomes = page.locator("#outcomes").inner_text()
    assert "subscribed_to_emails = false" in outcomes and "deleted_at set" in outcomes
    check(page, artifacts, "admin-import-done")
    with transaction() as session:
        people = {s.email: (s.name, s.status.value) for s in session.query(Subscriber)}
    assert people == {
        "on@gh.example": ('said "hi"', "active"),
        "off@gh.example": ("", "unsubscribed"),
        "deleted@gh.example": ("", "unsubscribed"),
    }
