"""Readers' own browsers and mail apps are people; proxies, scanners and scripts are not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsletter.tracking.machines import is_machine_agent, is_machine_hit

READERS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Thunderbird/125.0",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)",
]


@pytest.mark.parametrize("agent", READERS)
def test_readers_clients_are_people(agent: str) -> None:
    assert not is_machine_agent(agent, "203.0.113.7")


def test_apples_bare_webkit_agent_is_a_machine_only_from_apples_network() -> None:
    bare = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    )
    assert is_machine_agent(bare, "17.58.101.4")
    assert not is_machine_agent(bare, "203.0.113.7")  # Apple Mail itself, privacy protection off


def test_the_window_after_sending_marks_hits_as_machines() -> None:
    sent = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    reader = READERS[0]
    soon = dict(sent_at=sent, now=sent + timedelta(seconds=20), window_seconds=60)
    later = dict(sent_at=sent, now=sent + timedelta(minutes=5), window_seconds=60)
    assert is_machine_hit(reader, None, **soon)  # type: ignore[arg-type]
    assert not is_machine_hit(reader, None, **later)  # type: ignore[arg-type]
