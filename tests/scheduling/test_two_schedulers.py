"""Two schedulers started by mistake on one PostgreSQL database: one issue, one send."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.db import transaction
from newsletter.issues.models import Issue, IssueStatus
from newsletter.scheduling.clock import ManualClock
from newsletter.scheduling.models import SchedulerRun
from newsletter.scheduling.runner import Scheduler, TickReport
from newsletter.sending.models import Delivery, DeliveryStatus
from tests.scheduling.conftest import EDITOR, add_subscribers, drop_seeds, recipients, utc

SLOT = utc(2026, 3, 30, 7)


def tick_together(schedulers: list[Scheduler]) -> list[TickReport]:
    barrier = threading.Barrier(len(schedulers))
    reports: list[TickReport | BaseException] = [TickReport() for _ in schedulers]

    def run(index: int) -> None:
        try:
            barrier.wait()
            reports[index] = schedulers[index].tick()
        except BaseException as exc:
            reports[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(schedulers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for report in reports:
        if isinstance(report, BaseException):
            raise report
    return [r for r in reports if isinstance(r, TickReport)]


# Only on postgresql: concurrent schedulers are a PostgreSQL deployment.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("policy", ["auto", "review"])
def test_two_schedulers_build_one_issue_and_send_it_once(
    db_url: str,
    inbox: Path,
    configure: Callable[..., None],
    isolated_env: Path,
    policy: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure(
        newsletter_approval_policy=policy, newsletter_send_delay_minutes=0, newsletter_batch_size=2
    )
    drop_seeds(inbox, 3)
    readers = add_subscribers(7)
    clock = ManualClock(SLOT)
    schedulers = [Scheduler(clock=clock), Scheduler(clock=clock)]

    caplog.set_level(logging.INFO, logger="newsletter.scheduler")
    first = tick_together(schedulers)
    if policy == "review":
        from newsletter.issues import service as issues

        with transaction() as session:
            [issue] = session.scalars(select(Issue)).all()
            issues.approve(session, issue.id, by=EDITOR, now=SLOT)
    clock.advance(timedelta(seconds=30))
    second = tick_together(schedulers)

    assert sum(r.weekly is not None for r in first) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert sum("running the weekly job" in m for m in messages) == 1
    assert sum(len(r.started_sends) for r in first + second) == 1
    with transaction() as session:
        issues_built = session.scalars(select(Issue)).all()
        runs = session.scalar(select(func.count()).select_from(SchedulerRun))
        statuses = Counter(d.status for d in session.scalars(select(Delivery)))
    assert len(issues_built) == 1 and issues_built[0].status is IssueStatus.SENT
    assert runs == 1
    assert statuses == {DeliveryStatus.SENT: len(readers)}
    sent_to = Counter(recipients(isolated_env / "outbox"))
    assert sent_to == Counter({EDITOR: 1, **dict.fromkeys(readers, 1)})
    assert len(list((inbox / "done").iterdir())) == 3  # each page imported and filed once
    assert not [p for p in inbox.iterdir() if p.is_file()]
