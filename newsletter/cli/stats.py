"""`newsletter stats [ISSUE] [--json]`, `newsletter stats [ISSUE] --check [--repair]`"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from newsletter.cli.support import JsonOption, fail, print_json

# `stats` is a group (the root CLI adds one per domain) used as a single command: options may
# follow the issue id, as in every other command.
app = typer.Typer(
    help="The numbers: deliveries, opens, clicks, votes.",
    context_settings={"allow_interspersed_args": True},
)


@app.callback(invoke_without_command=True)
def stats(
    issue_arg: str | None = typer.Argument(
        None, metavar="[ISSUE]", help="Issue id; default: the issue whose send started last."
    ),
    as_json: bool = JsonOption,
    check: bool = typer.Option(
        False,
        "--check",
        help="Recount the issue's figures from its events and print every difference "
        "(exit 1 on any); every issue when no id is given.",
    ),
    repair: bool = typer.Option(
        False,
        "--repair",
        help="With --check: rewrite the kept figures from the recount (after a retention run "
        "or a bug), then check again.",
    ),
) -> None:
    """Deliveries, bounces, human and machine opens, clicks and votes for one issue."""
    from newsletter.audience import subject_tests
    from newsletter.db import transaction
    from newsletter.issues import service as issues
    from newsletter.issues.service import IssueNotFound
    from newsletter.tracking import stats as numbers_of

    issue = _issue_id(issue_arg)
    if repair and not check:
        fail(
            "--repair rewrites what --check finds: give both (`newsletter stats --check --repair`)"
        )
    if check:
        _check(issue, repair=repair)
        return
    with transaction() as session:
        issue_id = issue if issue is not None else issues.latest_sent_issue_id(session)
        if issue_id is None:
            fail("no issue has been sent yet: give an issue id (`newsletter stats ID`)")
        try:
            numbers = numbers_of.issue_stats(session, issue_id)
        except IssueNotFound as exc:
            fail(str(exc))
        # Per subject of its subject test, with the decision and the figures it read.
        numbers["subject_test"] = subject_tests.report(session, issue_id)
    if as_json:
        print_json(numbers)
    else:
        typer.echo(_as_text(numbers))


def _issue_id(given: str | None) -> int | None:
    if given is None:
        return None
    if not given.strip().isascii() or not given.strip().isdigit():
        fail(f"no issue with id {given!r}: an issue id is a whole number (`newsletter issue list`)")
    return int(given)


def _check(issue: int | None, *, repair: bool) -> None:
    from newsletter.db import transaction
    from newsletter.issues import service as issues
    from newsletter.issues.service import IssueNotFound
    from newsletter.tracking import stats as numbers_of

    with transaction() as session:
        ids = [issue] if issue is not None else sorted(i.id for i in issues.list_all(session))
    differences = 0
    for issue_id in ids:
        try:
            with transaction() as session:
                found = numbers_of.check(session, issue_id)
                if found and repair:
                    numbers_of.repair(session, issue_id)
        except IssueNotFound as exc:
            fail(str(exc))
        for kind, kept, counted in found:
            typer.echo(f"issue {issue_id}: {kind}: kept {kept}, recounted {counted}")
        if found and repair:
            typer.echo(f"issue {issue_id}: repaired {len(found)} figures from the events")
            with transaction() as session:
                found = numbers_of.check(session, issue_id)
        differences += len(found)
    if differences:
        fail(f"{differences} figures differ from a recount of the events")
    typer.echo(f"figures equal a recount of the events ({len(ids)} issues)")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def _as_text(n: dict[str, Any]) -> str:
    lines = [
        f"Issue {n['issue_id']} ({n['week']}, {n['status']})",
        f"  recipients {n['recipients']}  sent {n['sent']}  failed {n['failed']}"
        f"  uncertain {n['uncertain']}  skipped {n['skipped']}",
        f"  delivered {n['delivered']}  bounced {n['bounced']}  blocked {n['blocked']}"
        f"  dropped {n['dropped']}",
        f"  opens {n['opens_unique']} people ({_pct(n['open_rate'])})"
        f"  + {n['opens_machine']} machine",
        f"  clicks {n['clicks_unique']} people (click-through {_pct(n['click_rate'])},"
        f" click-to-open {_pct(n['click_to_open_rate'])})  + {n['clicks_machine']} machine",
        f"  votes {n['voters']} people ({_pct(n['vote_rate'])})"
        f"  unsubscribes {n['unsubscribes']}  complaints {n['complaints']}",
    ]
    if n.get("pause_reason"):
        lines.append(f"  the send {n['pause_reason']}")
    asked = n["re_engagement"]
    if asked["asked_awaiting_answer"] or asked["paused_for_no_answer"]:
        lines.append(
            f"  still reading? {asked['asked_awaiting_answer']} asked and awaited, "
            f"{asked['paused_for_no_answer']} paused after no answer"
        )
    if n["matchups"]:
        lines.append("  matchups:")
    for m in n["matchups"]:
        votes = "  ".join(f"{v['name']} {v['votes']}" for v in m["votes"])
        community = (
            "—"
            if m["community_pct"] is None
            else f"{m['community_pct']}% / {100 - m['community_pct']}%"
        )
        lines.append(
            f"    {m['title']}: {m['clicks_unique']} clicked; votes {votes} (community {community})"
        )
    if n["links"]:
        lines.append("  links:")
    for link in n["links"]:
        lines.append(f"    {link['clicks_unique']:>5}  {link['key']}  {link['url']}")
    hours = n["opens_by_hour"]
    if any(hours):
        peak = max(range(len(hours)), key=hours.__getitem__)
        first = n["opens_first_hour"]
        at = (first + timedelta(hours=peak)).strftime("%a %d %b %H:00 UTC")
        lines.append(
            f"  first opens over {len(hours)} h from {first:%a %d %b %H:00 UTC}:"
            f" {sum(hours)}, peak {hours[peak]} in the hour from {at}"
        )
    if len(n["trend"]) > 1:
        lines.append("  the last issues (people who opened, clicked, voted, of those delivered):")
        lines.append(f"    {'week':<16}{'opens':>8}{'clicks':>9}{'votes':>7}{'unsubscribes':>14}")
        for t in n["trend"]:
            lines.append(
                f"    {t['week']:<16}{_pct(t['open_rate']):>8}{_pct(t['click_rate']):>9}"
                f"{_pct(t['vote_rate']):>7}{t['unsubscribes']:>14}"
            )
    if n["by_topics"]:
        lines.append("  by the topics readers chose (people who opened, clicked, voted):")
        for row in n["by_topics"]:
            who = ", ".join(row["topics"]) if row["topics"] else "the whole issue"
            lines.append(
                f"    {who}: sent {row['sent']}, opened {row['opens_unique']}"
                f" ({_pct(row['open_rate'])}), clicked {row['clicks_unique']}"
                f" ({_pct(row['click_rate'])}), voted {row['voters']}"
                f" ({_pct(row['vote_rate'])}), unsubscribed {row['unsubscribes']}"
            )
    if n.get("subject_test"):
        from newsletter.audience.subject_tests import text_report

        lines += ["  " + line for line in text_report(n["subject_test"])]
    return "\n".join(lines)
