"""`newsletter stats [ISSUE] [--json]`"""

from __future__ import annotations

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
    issue: int | None = typer.Argument(
        None, help="Issue id; default: the issue whose send started last."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Deliveries, bounces, human and machine opens, clicks and votes for one issue."""
    from newsletter.db import transaction
    from newsletter.issues import service as issues
    from newsletter.issues.service import IssueNotFound
    from newsletter.tracking import stats as numbers_of

    with transaction() as session:
        issue_id = issue if issue is not None else issues.latest_sent_issue_id(session)
        if issue_id is None:
            fail("no issue has been sent yet: give an issue id (`newsletter stats ID`)")
        try:
            numbers = numbers_of.issue_stats(session, issue_id)
        except IssueNotFound as exc:
            fail(str(exc))
    if as_json:
        print_json(numbers)
    else:
        typer.echo(_as_text(numbers))


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
        f"  clicks {n['clicks_unique']} people  unsubscribes {n['unsubscribes']}"
        f"  complaints {n['complaints']}",
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
            f"    {m['slug']}: {m['clicks_unique']} clicked; votes {votes} (community {community})"
        )
    if n["links"]:
        lines.append("  links:")
    for link in n["links"]:
        lines.append(f"    {link['clicks_unique']:>5}  {link['key']}  {link['url']}")
    hours = n["opens_by_hour"]
    if any(hours):
        peak = max(range(len(hours)), key=hours.__getitem__)
        lines.append(
            f"  opens in the first 72 h: {sum(hours)}, peak {hours[peak]} in hour {peak + 1}"
        )
    return "\n".join(lines)
