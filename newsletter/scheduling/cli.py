"""`python scheduler.py [--once]`: the long-running scheduler, or the weekly job once."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from newsletter.settings import get_settings

SETTINGS_HELP = """\
settings (environment variables, or a .env file in the working directory):
  DATABASE_URL                     the database (same as the `newsletter` command)
  NEWSLETTER_SCHEDULE_DAY          day of the weekly job: mon..sun            (default mon)
  NEWSLETTER_SCHEDULE_TIME         local wall-clock time of the weekly job    (default 09:00)
  NEWSLETTER_TIMEZONE              IANA zone of that time; follows summer time (default Europe/Paris)
  NEWSLETTER_APPROVAL_POLICY       review: the draft waits for an editor's approval, editors get
                                   a "ready for review" email with the preview link;
                                   auto: sent at the send time unless an editor holds it
                                   (cancels it, or schedules it for another time)   (default review)
  NEWSLETTER_SEND_DELAY_MINUTES    planned send time = weekly job time + this (default 120)
  NEWSLETTER_EDITOR_EMAILS         comma-separated editors to notify
  NEWSLETTER_BASE_URL              public URL used in the preview link
  NEWSLETTER_INBOX_DIR             folder of new pages; each file ends in done/ or rejected/
                                   (with <name>.reason.txt beside it)            (default inbox)
  NEWSLETTER_MISFIRE_GRACE_SECONDS a weekly run missed while the scheduler was down is run once
                                   if it comes back within this; otherwise it is reported and
                                   recorded, not run                       (default 21600 = 6 h)
  NEWSLETTER_TICK_SECONDS          how often due work is looked for               (default 30)
  NEWSLETTER_SEND_STUCK_SECONDS    an in-flight batch older than this (or whose worker died) is
                                   swept: its deliveries become uncertain, never resent
                                                                                   (default 300)
  NEWSLETTER_TRANSPORT, SENDGRID_API_KEY, NEWSLETTER_OUTBOX_DIR   how mail goes out

Several schedulers on one database are safe: each weekly run and each send is claimed in the
database, so only one of them performs it. SIGTERM (or Ctrl-C) lets the current batch finish,
then exits 0.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scheduler.py",
        description=(
            "Weekly AI Tool Verdicts scheduler: imports the inbox, builds the week's issue at the "
            "configured local time, follows the approval policy, and sends due issues through "
            "the same delivery ledger and workers as `newsletter issue send`."
        ),
        epilog=SETTINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help=(
            "run the weekly job now (inbox, build, notify), then one tick (sweep, healing of "
            "uncertain deliveries, notices, re-engagement, whatever is due to send), and exit"
        ),
    )
    parser.add_argument("--json", action="store_true", help="with --once: print the report as JSON")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The libraries' own chatter (job added, migration context) would drown the one line per
    # decision the scheduler writes; their warnings and errors still show.
    quiet = max(logging.WARNING, logging.getLevelName(args.log_level))
    for library in ("apscheduler", "alembic"):
        logging.getLogger(library).setLevel(quiet)
    log = logging.getLogger("newsletter.scheduler")

    from newsletter.migrate import current_revision, head_revision
    from newsletter.scheduling.slots import ScheduleError
    from newsletter.security.keys import InsecureSecretKey, require_signing_key
    from newsletter.settings import SettingsError

    try:
        settings = get_settings()
    except SettingsError as exc:
        log.error("%s", exc)
        return 2
    try:
        require_signing_key(settings)
    except InsecureSecretKey as exc:
        log.error("%s", exc)
        return 2
    try:
        from newsletter.scheduling.runner import Scheduler

        scheduler = Scheduler(settings=settings)
    except ScheduleError as exc:
        log.error("bad schedule setting: %s", exc)
        return 2
    from sqlalchemy.exc import SQLAlchemyError

    from newsletter.db import cannot_open, transaction
    from subscribers.keys import SuppressionKeyChanged, check_suppression_key

    url = settings.database_url
    try:
        if current_revision(url) != head_revision(url):
            log.error(
                "the database at DATABASE_URL is not initialised or not migrated: "
                "run `newsletter init`"
            )
            return 2
        with transaction() as session:
            check_suppression_key(session)
    except SuppressionKeyChanged as exc:
        log.error("%s", exc)
        return 2
    except SQLAlchemyError as exc:
        # The sentence the CLI gives (password hidden), not a page of tracebacks.
        log.error("%s", cannot_open(url, exc))
        return 2

    if args.once:
        from dataclasses import asdict

        report = scheduler.run_now()
        tick = scheduler.dispatch()
        if args.json:
            data = asdict(report)
            data["send_at"] = report.send_at.isoformat() if report.send_at else None
            data["started_sends"] = tick.started_sends
            data["resent_uncertain"] = tick.resent_uncertain
            data["pause_notices"] = tick.pause_notices
            data["asked_still_reading"] = tick.asked_still_reading
            data["paused_for_silence"] = tick.paused_for_silence
            print(json.dumps(data, indent=2, default=str))
        else:
            print(report.summary())
        return 0

    from newsletter.scheduling.jobs import run_forever

    run_forever(scheduler)
    return 0
