"""`newsletter demo`: the whole weekly job on the embedded default, end to end.

It uses the real pieces, in the order an operator's week goes: pages dropped in the inbox, the
scheduler's weekly job (import, build, editor notice), an editor's approval, the send through the
ledger (the outbox transport: one .eml per message), readers opening, clicking and voting (the
tracking service the web endpoints call), and the numbers. Run it in an empty folder:
`make demo` does, in ./demo-data.
"""

from __future__ import annotations

import random
import secrets
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import typer

from newsletter.accounts.models import Role
from newsletter.accounts.service import create_user
from newsletter.audience import service as audience
from newsletter.audience import subject_tests
from newsletter.db import transaction
from newsletter.issues import service as issues
from newsletter.matchups import service as matchups
from newsletter.migrate import upgrade
from newsletter.orm import utcnow
from newsletter.scheduling.weekly import run_weekly_job
from newsletter.sending import service as sending
from newsletter.sending.worker import run_until_done
from newsletter.settings import get_settings
from newsletter.tracking import service as tracking
from newsletter.tracking import stats as tracking_stats
from subscribers import service as subscribers

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "matchups"
READERS = [
    "Ada",
    "Grace",
    "Alan",
    "Margaret",
    "Linus",
    "Barbara",
    "Dennis",
    "Frances",
    "Ken",
    "Radia",
    "Edsger",
    "Hedy",
    "Tim",
    "Katherine",
    "Guido",
    "Annie",
    "Brian",
    "Sophie",
    "Donald",
    "Joan",
]
HUMAN_AGENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile"
SCANNER_AGENT = "Mozilla/5.0 (compatible; BingPreview/1.0b)"


def step(number: int, text: str) -> None:
    typer.secho(f"{number}. {text}", bold=True)


# Last week's issue is sent from the first pages; the rest arrive this week, so the demo ends
# with a draft to edit, preview and approve in the web app.
SENT_PAGES = 5
# Readers who chose topics (`newsletter subscribers topics`): the rest get every matchup.
DEMO_TOPICS = (
    ("Ken", ["Developer Tools"]),
    ("Radia", ["Video"]),
    ("Edsger", ["Developer Tools", "Video"]),
)
DEMO_STAFF = (("admin@example.com", Role.ADMIN), ("editor@example.com", Role.EDITOR))


@dataclass(frozen=True)
class DemoResult:
    sent_issue_id: int
    draft_issue_id: int
    passwords: dict[str, str]  # staff email -> the one-time password printed for it


def run_demo() -> DemoResult:
    settings = get_settings()
    upgrade()
    with transaction() as session:
        if issues.list_all(session):
            typer.secho(
                f"error: {settings.database_url} already has issues; run the demo in an empty "
                "folder (`make demo` re-creates ./demo-data)",
                err=True,
            )
            raise typer.Exit(1)
    step(1, f"database ready ({settings.database_url})")

    pages = sorted(EXAMPLES.glob("*.txt"))
    inbox = settings.newsletter_inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    for page in pages[:SENT_PAGES]:
        shutil.copy(page, inbox / page.name)
    step(2, f"{SENT_PAGES} example matchup pages dropped in {inbox}/ (last week's)")

    with transaction() as session:
        for index, name in enumerate(READERS, start=1):
            subscribers.add_by_admin(
                session, f"{name.lower()}.reader{index}@example.com", name, source="demo"
            )
    step(3, f"{len(READERS)} subscribers on the list (consent recorded as the demo's import)")

    now = utcnow()
    report = run_weekly_job(now=now - timedelta(days=7))
    step(4, f"last week's job: {report.summary()}")
    if report.issue_id is None:
        raise typer.Exit(1)
    issue_id = report.issue_id

    # Three readers chose topics: they get only the matchups in them (issue_variants).
    with transaction() as session:
        for name, wanted in DEMO_TOPICS:
            index = READERS.index(name) + 1
            reader = subscribers.find(session, f"{name.lower()}.reader{index}@example.com")
            assert reader is not None
            subscribers.set_topics(session, reader.id, matchups.categories_named(session, wanted))

    with transaction() as session:
        html, text = issues.preview(session, issue_id)
    Path("preview.html").write_text(html, encoding="utf-8")
    Path("preview.txt").write_text(text, encoding="utf-8")
    step(5, f"editor preview written: preview.html ({len(html.encode()) // 1024} KB), preview.txt")

    with transaction() as session:
        issue = issues.approve(session, issue_id, by="demo editor")
        audience.start_send(session, issue_id)
        subject = issue.rendered_subject
    run_until_done(issue_id, worker_id=sending.default_worker_id())
    with transaction() as session:
        counts = sending.status_counts(session, issue_id)
        variants = sending.variants(session, issue_id)
    step(
        6,
        f"approved and sent {subject!r}: {counts['sent']} sent, {counts['failed']} failed, "
        f"{counts['uncertain']} uncertain → {settings.newsletter_outbox_dir}/*.eml",
    )
    for variant in variants:
        if variant["topics"]:
            typer.echo(
                f"   {variant['deliveries']} chose {', '.join(variant['topics'])}: only "
                f"{variant['matchups']} of the matchups, "
                + (
                    f"subject {variant['subject']!r}"
                    if variant["subject"] is not None
                    else "each their subject of the subject test"
                )
            )

    _backdate_send(issue_id, to=now - timedelta(days=6, hours=20))
    _simulate_readers(issue_id)
    step(7, "readers opened, clicked and voted (a link scanner's hits are flagged as machine)")

    with transaction() as session:
        stats = tracking_stats.issue_stats(session, issue_id)
    step(8, "the numbers (`newsletter stats --json` prints them all):")
    typer.echo(
        f"   recipients {stats['recipients']}, sent {stats['sent']}, human opens "
        f"{stats['opens_unique']} (machine {stats['opens_machine']}), unique clicks "
        f"{stats['clicks_unique']}, unsubscribes {stats['unsubscribes']}"
    )
    for matchup in stats["matchups"]:
        votes = ", ".join(f"{v['name']} {v['votes']}" for v in matchup["votes"])
        clicks = matchup["clicks_unique"]
        typer.echo(
            f"   {matchup['title']}: {clicks} click{'' if clicks == 1 else 's'}; votes {votes}"
        )

    # Two segments for the editor to try as an issue's audience (the admin's Segments page).
    with transaction() as session:
        for name, rule in DEMO_SEGMENTS:
            segment = audience.create(session, name, rule, by="demo")
            typer.echo(f"   segment {name!r}: {audience.count(session, segment)} members now")

    for page in pages[SENT_PAGES:]:
        shutil.copy(page, inbox / page.name)
    this_week = run_weekly_job(now=now)
    step(9, f"this week's job: {this_week.summary()}")
    if this_week.issue_id is None:
        raise typer.Exit(1)

    # A subject test on this week's draft, for the editor to read, change or remove.
    with transaction() as session:
        draft = issues.require(session, this_week.issue_id)
        computed = issues.content(session, draft).subject
        subject_tests.set_test(
            session,
            draft.id,
            [computed, "This week's AI tool verdicts: which would you ship?"],
            share=20,
            wait_minutes=4 * 60,
            by="demo",
        )
    typer.echo(
        "   the draft tries two subjects on 20% of the list; the winner, by clicks and votes, "
        "goes to the rest 4h after the send starts (the issue's page, Subject test)"
    )

    passwords = _staff_accounts()
    step(
        10,
        "staff accounts (random passwords, printed once; change yours on /account, "
        "your address at the top of every staff page):",
    )
    for email, password in passwords.items():
        typer.echo(f"   {email}  {password}")
    base = settings.newsletter_base_url.rstrip("/")
    typer.echo(
        f"\nNext: `newsletter serve`, open {base}/ (the public home) and sign in at "
        f"{base}/login\nas editor@example.com: this week's draft (issue {this_week.issue_id}) "
        f"waits at {base}/admin/issues/{this_week.issue_id}."
    )
    return DemoResult(issue_id, this_week.issue_id, passwords)


DEMO_SEGMENTS = [
    ("Clicked or voted lately", {"statuses": ["active"], "engaged_in_last": 4}),
    ("Never opened", {"statuses": ["active"], "never_opened": True}),
]


def _staff_accounts() -> dict[str, str]:
    """An admin and an editor, each with a fresh random password (the demo's folder is new)."""
    passwords = {email: secrets.token_urlsafe(12) for email, _ in DEMO_STAFF}
    with transaction() as session:
        for email, role in DEMO_STAFF:
            create_user(session, email, passwords[email], role)
    return passwords


def _backdate_send(issue_id: int, *, to: datetime) -> None:
    """Last week's issue went out last week: its send times move back, so the readers'
    opens, clicks and votes that follow it are in the past, not hours ahead of the clock. Each
    owner moves its own rows."""
    with transaction() as session:
        shift = issues.backdate_send(session, issue_id, to=to)
        sending.backdate_deliveries(session, issue_id, by=shift)


def _simulate_readers(issue_id: int) -> None:
    """Readers open an hour after the send; a few click and vote; one link scanner passes by."""
    rng = random.Random(47)  # the same story every run
    with transaction() as session:
        deliveries = [d for d, _ in sending.list_deliveries(session, issue_id, limit=10_000)]
        issue = issues.get(session, issue_id)
        assert issue is not None and issue.sent_at is not None
        sent_at = issue.sent_at
        links = [link for link in issues.links_of(session, issue_id) if link.matchup_id]
        slugs = [item.verdict.slug for item in issues.content(session, issue).featured]
        for number, delivery in enumerate(deliveries):
            at = sent_at + timedelta(minutes=30 + 7 * number)
            if number == 0:
                tracking.record_open(
                    session,
                    delivery.id,
                    user_agent=SCANNER_AGENT,
                    client_ip="127.0.0.1",
                    now=sent_at + timedelta(seconds=2),
                )
            if rng.random() > 0.7:
                continue
            tracking.record_open(
                session, delivery.id, user_agent=HUMAN_AGENT, client_ip="127.0.0.1", now=at
            )
            if links and rng.random() < 0.5:
                link = rng.choice(links)
                tracking.record_click(
                    session,
                    delivery.id,
                    link.key,
                    user_agent=HUMAN_AGENT,
                    client_ip="127.0.0.1",
                    now=at + timedelta(minutes=1),
                )
            for slug in slugs:
                if rng.random() < 0.4:
                    tracking.record_vote(
                        session,
                        delivery.id,
                        slug,
                        rng.choice((0, 0, 1)),
                        user_agent=HUMAN_AGENT,
                        client_ip="127.0.0.1",
                        confirmed=True,
                        now=at + timedelta(minutes=2),
                    )
