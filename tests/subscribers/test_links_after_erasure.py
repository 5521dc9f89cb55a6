"""A link made for one person never opens another's data, whatever happens to ids."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from tests.subscribers.helpers import cli, client, confirmation_link, outbox, path_of


def test_an_erased_persons_links_never_open_the_next_person(db: Session) -> None:
    web = client()
    web.post("/subscribe", data={"email": "first@example.com", "name": "First"})
    confirm = path_of(confirmation_link(outbox()[-1]))
    confirmed = web.post(confirm)
    assert confirmed.status_code == 200 and "first@example.com" in confirmed.text
    [prefs] = re.findall(r'href="(/p/[^"]+)"', confirmed.text)
    assert "first@example.com" in web.get(prefs).text

    assert cli("subscribers", "erase", "first@example.com", "--yes").exit_code == 0
    assert cli("subscribers", "add", "second@example.com", "--name", "Second").exit_code == 0

    for path in (prefs, f"{prefs}/export.json", f"{prefs}/erase", confirm):
        answer = web.get(path)
        assert answer.status_code == 404, path
        assert "second@example.com" not in answer.text and "Second" not in answer.text
        assert "no longer valid" in answer.text or "not valid" in answer.text, answer.text
    for path in (f"{prefs}/erase", f"{prefs}/pause", confirm):
        assert web.post(path).status_code == 404, path
    listed = cli("subscribers", "list", "--json")
    assert '"status": "active"' in listed.output and "second@example.com" in listed.output


def test_links_signed_before_public_ids_work_only_for_rows_that_existed_then(
    db: Session,
) -> None:
    from newsletter.instance import set_value
    from newsletter.security.delivery_tokens import LEGACY_DELIVERY_PURPOSE, LEGACY_MAX_DELIVERY_ID
    from newsletter.security.signing import sign
    from subscribers import service
    from tests.subscribers.factories import active_subscriber, delivery_for

    old_id = active_subscriber(db, "old@example.com")
    old_delivery = delivery_for(db, old_id).id
    new_id = active_subscriber(db, "new@example.com")
    new_delivery = delivery_for(db, new_id, week="2026-W11").id
    set_value(db, LEGACY_MAX_DELIVERY_ID, str(old_delivery))
    set_value(db, service.LEGACY_MAX_SUBSCRIBER_ID, str(old_id))
    db.commit()

    web = client()
    for purpose, value, email in (
        (LEGACY_DELIVERY_PURPOSE, old_delivery, "old@example.com"),
        (service.LEGACY_SUBSCRIBER_PURPOSE, old_id, "old@example.com"),
    ):
        assert email in web.get(f"/p/{sign(purpose, str(value))}").text
    for purpose, value in (
        (LEGACY_DELIVERY_PURPOSE, new_delivery),
        (service.LEGACY_SUBSCRIBER_PURPOSE, new_id),
    ):
        answer = web.get(f"/p/{sign(purpose, str(value))}")
        assert answer.status_code == 404 and "new@example.com" not in answer.text
