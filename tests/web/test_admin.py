"""Admin pages: subscribers (search, filter, keyset pages, add, import, export, unsubscribe,
erase), the suppression list, users and roles."""

from __future__ import annotations

import csv
import io
import re

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from newsletter.cli import app as cli_app
from newsletter.db import transaction
from tests.web.conftest import ADMIN, csrf_from


def _add(admin: TestClient, email: str, name: str = "") -> str:
    token = csrf_from(admin.get("/admin/subscribers").text)
    return admin.post(
        "/admin/subscribers", data={"email": email, "name": name, "csrf_token": token}
    ).text


def test_add_then_find_by_address_prefix_or_name(admin: TestClient) -> None:
    assert "ada@example.com: added" in _add(admin, "Ada@Example.com", "Ada Lovelace")
    _add(admin, "grace@example.com", "Grace Hopper")
    by_address = admin.get("/admin/subscribers", params={"q": "ada@"}).text
    assert "ada@example.com" in by_address and "grace@example.com" not in by_address
    by_name = admin.get("/admin/subscribers", params={"q": "hopper"}).text
    assert "grace@example.com" in by_name and "ada@example.com" not in by_name
    nobody = admin.get("/admin/subscribers", params={"q": "nobody"}).text
    assert "No subscriber matches" in nobody


def test_filter_by_status(admin: TestClient) -> None:
    _add(admin, "stay@example.com")
    _add(admin, "leave@example.com")
    page = admin.get("/admin/subscribers", params={"q": "leave@"}).text
    sid = re.findall(r'href="/admin/subscribers/(\d+)"', page)[0]
    token = csrf_from(page)
    admin.post(f"/admin/subscribers/{sid}/unsubscribe", data={"csrf_token": token})
    gone = admin.get("/admin/subscribers", params={"status": "unsubscribed"}).text
    assert "leave@example.com" in gone and "stay@example.com" not in gone
    active = admin.get("/admin/subscribers", params={"status": "active"}).text
    assert "stay@example.com" in active and "leave@example.com" not in active


def test_keyset_pages_walk_the_whole_list_once(admin: TestClient) -> None:
    from subscribers.service import add_by_admin

    with transaction() as session:
        for i in range(120):
            add_by_admin(session, f"reader{i:03}@example.com", f"Reader {i}")
    seen: list[str] = []
    url = "/admin/subscribers"
    while url:
        page = admin.get(url).text
        seen += re.findall(r'href="/admin/subscribers/\d+">(reader\d+@example\.com)<', page)
        nxt = page.split('rel="next"', 1)[0].rsplit('href="', 1)[1] if 'rel="next"' in page else ""
        url = nxt.split('"', 1)[0].replace("&amp;", "&") if nxt else ""
    assert len(seen) == 120 and len(set(seen)) == 120
    assert seen[0] == "reader119@example.com"  # newest first


def test_export_is_a_csv_of_the_list_safe_for_spreadsheets(admin: TestClient) -> None:
    _add(admin, "ada@example.com", '=HYPERLINK("http://evil")')
    response = admin.get("/admin/subscribers/export.csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows[0]["email"] == "ada@example.com" and rows[0]["status"] == "active"
    assert rows[0]["name"].startswith("'=")
    # The admin page and `newsletter subscribers export` give the same file.
    cli = CliRunner().invoke(cli_app, ["subscribers", "export"])
    assert cli.exit_code == 0
    assert cli.stdout.splitlines() == response.text.splitlines()


def test_erase_removes_the_person_and_keeps_the_address_suppressed(admin: TestClient) -> None:
    _add(admin, "forget@example.com", "Forget Me")
    page = admin.get("/admin/subscribers", params={"q": "forget@"}).text
    sid = re.findall(r'href="/admin/subscribers/(\d+)"', page)[0]
    detail = admin.get(f"/admin/subscribers/{sid}").text
    assert "Forget Me" in detail
    # The button on the page is a link to a confirmation page; a bare POST only asks too.
    asked = admin.post(f"/admin/subscribers/{sid}/erase", data={"csrf_token": csrf_from(detail)})
    assert "Yes, erase all personal data" in asked.text
    assert "forget@example.com" in admin.get("/admin/subscribers").text
    admin.post(
        f"/admin/subscribers/{sid}/erase",
        data={"csrf_token": csrf_from(asked.text), "confirmed": "yes"},
    )
    assert "forget@example.com" not in admin.get("/admin/subscribers").text
    assert admin.get(f"/admin/subscribers/{sid}").status_code == 404
    suppressions = admin.get("/admin/suppressions").text
    assert "(1)" in suppressions and "forget@example.com" not in suppressions
    again = _add(admin, "forget@example.com")
    assert "suppressed" in again


def test_users_and_roles(admin: TestClient) -> None:
    page = admin.get("/admin/users").text
    token = csrf_from(page)
    short = admin.post(
        "/admin/users",
        data={
            "email": "new@example.com",
            "role": "editor",
            "password": "short",
            "csrf_token": token,
        },
    )
    assert "at least 12 characters" in short.text
    made = admin.post(
        "/admin/users",
        data={
            "email": "new@example.com",
            "role": "editor",
            "password": "a long enough password",
            "csrf_token": token,
        },
    )
    assert "new@example.com can now sign in as editor" in made.text
    from newsletter.accounts.service import find

    with transaction() as session:
        me = find(session, ADMIN).id
        new = find(session, "new@example.com").id
    demoted = admin.post(f"/admin/users/{me}/role", data={"role": "editor", "csrf_token": token})
    assert "last admin cannot be demoted" in demoted.text
    promoted = admin.post(f"/admin/users/{new}/role", data={"role": "admin", "csrf_token": token})
    assert "new@example.com is now admin" in promoted.text
    selfremove = admin.post(f"/admin/users/{me}/delete", data={"csrf_token": token})
    assert "cannot remove your own account" in selfremove.text
    asked = admin.post(f"/admin/users/{new}/delete", data={"csrf_token": token})
    assert "Yes, remove new@example.com" in asked.text
    removed = admin.post(
        f"/admin/users/{new}/delete", data={"csrf_token": token, "confirmed": "yes"}
    )
    assert "new@example.com removed" in removed.text
