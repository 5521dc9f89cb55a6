"""The weekly issue: pick the week's matchups, keep the editor's words, freeze and schedule it.

Services never commit: the CLI command, web request or job that calls them owns the transaction.
State changes go through `repository.transition` (a conditional UPDATE), so a double click or a
second scheduler cannot move an issue twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from newsletter.errors import NotFound, Refused
from newsletter.issues import repository, verdicts
from newsletter.issues.models import (
    IN_SEND,
    Issue,
    IssueLink,
    IssueMatchup,
    IssueStatus,
    IssueVariant,
)
from newsletter.issues.render import (
    FeaturedMatchup,
    IssueContent,
    OutboundLink,
    RenderedIssue,
    render_issue,
)
from newsletter.issues.verdicts import CommunityVote, Verdict
from newsletter.issues.weeks import week_bounds, week_of
from newsletter.matchups import service as matchups_service
from newsletter.matchups.models import Matchup
from newsletter.orm import utcnow
from newsletter.security.delivery_tokens import PREVIEW_TOKEN, fill
from newsletter.settings import get_settings
from newsletter.votes import service as votes
from newsletter.votes.panel import ReadersVsPanel

EDITABLE = (IssueStatus.DRAFT, IssueStatus.APPROVED, IssueStatus.SCHEDULED)
# Before a send starts; a send under way is cancelled through the ledger (sending.service.
# cancel), which also skips what was not handed off yet.
CANCELLABLE = (IssueStatus.DRAFT, IssueStatus.APPROVED, IssueStatus.SCHEDULED)


class IssueError(Refused):
    """A refused action on an issue; the message says which issue and why."""


class IssueNotFound(IssueError, NotFound):
    """No issue has that id (the web answers 404)."""


@dataclass(frozen=True)
class BuildResult:
    issue: Issue
    refreshed: bool  # False when the issue exists and is past draft, so it was left alone


def _zone() -> ZoneInfo:
    return ZoneInfo(get_settings().newsletter_timezone)


def current_week(now: datetime | None = None) -> str:
    return week_of(now or utcnow(), _zone())


def require(session: Session, issue_id: int, *, lock: bool = False) -> Issue:
    issue = repository.get(session, issue_id, lock=lock)
    if issue is None:
        raise IssueNotFound(f"no issue with id {issue_id}")
    return issue


# --- picking -------------------------------------------------------------------------------


def status_of(session: Session, issue_id: int) -> IssueStatus | None:
    """Read from the table, never from an object this session loaded earlier (a worker asks
    while other processes move the issue)."""
    return repository.status_of(session, issue_id)


# The send's transitions, asked for by the ledger: this module is the one writer of an issue's
# status. Each is a conditional UPDATE, so whoever loses a race moves nothing (False).


def start_sending(session: Session, issue_id: int, now: datetime) -> bool:
    """approved|scheduled -> sending."""
    return repository.transition(
        session,
        issue_id,
        (IssueStatus.APPROVED, IssueStatus.SCHEDULED),
        IssueStatus.SENDING,
        send_started_at=now,
        updated_at=now,
    )


def pause_sending(
    session: Session, issue_id: int, now: datetime, *, reason: str | None = None
) -> bool:
    """sending -> paused (an operator, the worker when SendGrid refuses the credentials, or the
    send itself, with its `reason`, when bounces or complaints pass their thresholds)."""
    return repository.transition(
        session,
        issue_id,
        (IssueStatus.SENDING,),
        IssueStatus.PAUSED,
        updated_at=now,
        pause_reason=reason,
        pause_noticed_at=None,
    )


def resume_sending(session: Session, issue_id: int, now: datetime) -> bool:
    """paused -> sending."""
    return repository.transition(
        session,
        issue_id,
        (IssueStatus.PAUSED,),
        IssueStatus.SENDING,
        updated_at=now,
        pause_reason=None,
        pause_noticed_at=None,
        resumed_at=now,
    )


def unnoticed_pauses(session: Session) -> list[Issue]:
    """Sends that paused themselves and whose editors have not been told yet."""
    return repository.unnoticed_pauses(session)


def mark_pause_noticed(session: Session, issue_id: int, now: datetime) -> None:
    repository.set_times(session, issue_id, pause_noticed_at=now)


def finish_sending(
    session: Session, issue_id: int, now: datetime, *, when: ColumnElement[bool]
) -> bool:
    """sending -> sent, in the same UPDATE as the ledger's "no delivery still open" (`when`)."""
    return repository.transition(
        session,
        issue_id,
        (IssueStatus.SENDING,),
        IssueStatus.SENT,
        when=when,
        sent_at=now,
        updated_at=now,
    )


def backdate_send(session: Session, issue_id: int, *, to: datetime) -> timedelta:
    """Move a sent issue's send (approval, start, end) back so it ended at `to`; returns by how
    much. For `newsletter demo`, whose last week's issue is sent a moment before."""
    issue = require(session, issue_id)
    if issue.sent_at is None:
        raise IssueError(f"issue {issue_id} has not been sent")
    shift = issue.sent_at - to
    values = {
        name: getattr(issue, name) - shift
        for name in ("sent_at", "send_started_at", "approved_at")
        if getattr(issue, name) is not None
    }
    repository.set_times(session, issue_id, **values)
    return shift


def cancel_sending(session: Session, issue_id: int, now: datetime) -> bool:
    """sending|paused -> cancelled (the ledger then skips what was not handed off)."""
    return repository.transition(session, issue_id, IN_SEND, IssueStatus.CANCELLED, updated_at=now)


def build_issue(session: Session, week: str | None = None, *, now: datetime | None = None) -> Issue:
    """Create or refresh the draft for an ISO week; editor overrides survive."""
    return build(session, week, now=now).issue


def build(session: Session, week: str | None = None, *, now: datetime | None = None) -> BuildResult:
    now = now or utcnow()
    week = week or current_week(now)
    start, end = week_bounds(week, _zone())
    if start > now:
        raise IssueError(f"week {week} has not started yet (it starts {start.isoformat()})")
    # A past week is cut at its end; the running week at the moment of the build.
    cutoff = min(now, end)

    issue = repository.get_by_week(session, week)
    if issue is not None and issue.status is not IssueStatus.DRAFT:
        return BuildResult(issue, refreshed=False)
    if issue is None:
        issue = repository.add(session, Issue(week=week, cutoff_at=cutoff, items=[]))
    else:
        issue.cutoff_at = cutoff

    previous = repository.previous_issue(session, week)
    after = previous.cutoff_at if previous is not None else None
    candidates = repository.candidate_matchups(
        session, after=after, until=cutoff, issue_id=issue.id
    )
    wanted = {m.id: m for m in candidates}
    kept = {item.matchup_id: item for item in issue.items if item.matchup_id in wanted}
    repository.remove_items(
        session, [item.id for item in issue.items if item.matchup_id not in wanted]
    )
    session.expire(issue, ["items"])
    for matchup in candidates:
        if matchup.id not in kept:
            item = IssueMatchup(issue_id=issue.id, matchup_id=matchup.id, position=0)
            session.add(item)
            kept[matchup.id] = item
    _apply_order(list(kept.values()), wanted)
    session.flush()
    session.expire(issue, ["items"])
    return BuildResult(require(session, issue.id), refreshed=True)


class _Placed(Protocol):
    """What ordering reads and writes: a saved IssueMatchup, or a draft's unsaved copy."""

    matchup_id: int
    excluded: bool
    position_override: int | None
    position: int


def _apply_order(items: Sequence[_Placed], matchups: dict[int, Matchup]) -> None:
    """Most decisive first; an editor's pinned positions win; excluded ones go last."""

    def decisive(item: _Placed) -> tuple[int, datetime, int]:
        matchup = matchups[item.matchup_id]
        return (-verdicts.panel_gap(matchup), matchup.published_at, matchup.id)

    included = sorted((i for i in items if not i.excluded), key=decisive)
    pinned = sorted(
        (i for i in included if i.position_override is not None),
        key=lambda i: (i.position_override or 0, decisive(i)),
    )
    order = [i for i in included if i.position_override is None]
    for item in pinned:
        index = max(0, min(len(order), (item.position_override or 1) - 1))
        order.insert(index, item)
    order += sorted((i for i in items if i.excluded), key=decisive)
    for position, item in enumerate(order, start=1):
        item.position = position


def _reorder(session: Session, issue: Issue) -> None:
    matchups = repository.matchups_of(session, issue)
    _apply_order(list(issue.items), matchups)
    session.flush()


# --- the editor's words --------------------------------------------------------------------


def _editable(session: Session, issue: Issue) -> bool:
    """True if an approval was withdrawn to let the edit in (the editor approves again)."""
    if issue.status is IssueStatus.DRAFT:
        return False
    if issue.status not in EDITABLE:
        raise IssueError(
            f"issue {issue.id} ({issue.week}) is {issue.status.value}: too late to edit"
        )
    moved = repository.transition(
        session,
        issue.id,
        (IssueStatus.APPROVED, IssueStatus.SCHEDULED),
        IssueStatus.DRAFT,
        **_unfrozen(),
    )
    if not moved:
        raise IssueError(f"issue {issue.id} changed state while editing; try again")
    return True


def _unfrozen() -> dict[str, Any]:
    return {
        "rendered_subject": None,
        "rendered_preheader": None,
        "rendered_html": None,
        "rendered_text": None,
        "rendered_untracked_html": None,
        "rendered_untracked_text": None,
        "rendered_public_html": None,
        "rendered_at": None,
        "approved_at": None,
        "approved_by": None,
        "scheduled_at": None,
    }


def _override(value: str | None, *, single_line: bool, limit: int) -> str | None:
    if value is None:
        return None
    cleaned = (
        verdicts.header_safe(value, limit) if single_line else value.replace("\r\n", "\n").strip()
    )
    return cleaned or None


def edit_issue(
    session: Session,
    issue_id: int,
    *,
    subject: str | None = None,
    preheader: str | None = None,
    intro: str | None = None,
) -> bool:
    """Set the editor's subject, preheader or intro; an empty string goes back to the computed
    text. Returns True if an approval had to be withdrawn."""
    issue = require(session, issue_id)
    reopened = _editable(session, issue)
    issue = require(session, issue_id)
    if subject is not None:
        if not verdicts.header_safe(subject, verdicts.SUBJECT_CHARS) and subject.strip():
            raise IssueError("the subject has no printable text")
        issue.subject_override = _override(
            subject, single_line=True, limit=verdicts.SUBJECT_CHARS + 60
        )
    if preheader is not None:
        issue.preheader_override = _override(
            preheader, single_line=True, limit=verdicts.PREHEADER_CHARS + 60
        )
    if intro is not None:
        issue.intro_override = _override(intro, single_line=False, limit=0)
    session.flush()
    return reopened


def set_segment(session: Session, issue_id: int, segment_id: int | None) -> bool:
    """Send the issue to a segment's members (newsletter/audience checks it exists), or to
    everyone (None). An approval is withdrawn, as for any edit: the editor approves it again for
    this audience. Returns True if it was; unchanged, nothing happens."""
    issue = require(session, issue_id, lock=True)
    if issue.status not in EDITABLE:
        raise IssueError(
            f"issue {issue.id} ({issue.week}) is {issue.status.value}: too late to change who "
            "it goes to"
        )
    if issue.segment_id == segment_id:
        return False
    reopened = _editable(session, issue)
    repository.set_values(session, issue_id, segment_id=segment_id)
    return reopened


def segment_users(session: Session, segment_id: int) -> list[Issue]:
    """Issues not yet sending that go to this segment (deleting it would leave them nobody)."""
    return repository.segment_users(session, segment_id)


def record_audience(session: Session, issue_id: int, audience: dict[str, Any]) -> None:
    """What the send went to, written as it starts (the segment may change later)."""
    repository.set_values(session, issue_id, audience=audience)


def mailed_issue_ids(session: Session) -> list[int]:
    """Every issue whose send started (some readers were sent it)."""
    return repository.mailed_issue_ids(session)


def edit_matchup(
    session: Session,
    issue_id: int,
    slug: str,
    *,
    summary: str | None = None,
    position: int | None = None,
    excluded: bool | None = None,
) -> bool:
    """Override one matchup's summary, pin its position (0 unpins), exclude or include it."""
    issue = require(session, issue_id)
    matchups = repository.matchups_of(session, issue)
    item = next((i for i in issue.items if matchups[i.matchup_id].slug == slug), None)
    if item is None:
        slugs = ", ".join(matchups[i.matchup_id].slug for i in issue.items) or "none"
        raise IssueError(f"matchup {slug!r} is not in issue {issue_id} (it has: {slugs})")
    if position is not None and position < 0:
        raise IssueError(f"position must be 1 or more (0 unpins), got {position}")
    reopened = _editable(session, issue)
    issue = require(session, issue_id)
    item = next(i for i in issue.items if i.id == item.id)
    if summary is not None:
        item.summary_override = _override(summary, single_line=False, limit=0)
    if position is not None:
        item.position_override = position or None
    if excluded is not None:
        item.excluded = excluded
    session.flush()
    _reorder(session, issue)
    return reopened


def move_matchup(session: Session, issue_id: int, slug: str, step: int) -> bool:
    """Move a matchup one place up (step -1) or down (+1) among the included ones. The editor
    has chosen an order by hand, so every included matchup is pinned where it now stands.
    Returns True if an approval was withdrawn."""
    issue = require(session, issue_id)
    matchups = repository.matchups_of(session, issue)
    included = [i for i in issue.items if not i.excluded]
    index = next((n for n, i in enumerate(included) if matchups[i.matchup_id].slug == slug), None)
    if index is None:
        raise IssueError(f"matchup {slug!r} is not among the included matchups of issue {issue_id}")
    target = index + step
    if step not in (-1, 1) or not 0 <= target < len(included):
        return False
    reopened = _editable(session, issue)
    issue = require(session, issue_id)
    order = [i for i in issue.items if not i.excluded]
    order[index], order[target] = order[target], order[index]
    for position, item in enumerate(order, start=1):
        item.position_override = position
    session.flush()
    _reorder(session, issue)
    return reopened


@dataclass
class MatchupDraft:
    summary: str | None = None  # None: as saved; "": back to the computed text
    position: int | None = None  # None: as saved; 0: unpinned
    excluded: bool | None = None


@dataclass
class Draft:
    """The editor's form as typed and not saved: what the live preview renders."""

    subject: str | None = None
    preheader: str | None = None
    intro: str | None = None
    matchups: dict[str, MatchupDraft] = field(default_factory=dict)


@dataclass
class _DraftItem:
    matchup_id: int
    excluded: bool
    position_override: int | None
    position: int
    summary_override: str | None


def draft_preview(session: Session, issue_id: int, draft: Draft) -> tuple[str, str]:
    """(html, text) of the issue as it would read with the draft's edits, rendered without
    writing anything: no override saved, no link recorded, nothing frozen. Untracked, so the
    preview's links go where a reader's finally land."""
    found = draft_variant_preview(session, issue_id, draft, [])
    return found.html, found.text


def draft_variant_preview(
    session: Session, issue_id: int, draft: Draft, topic_names: Sequence[str]
) -> Variant:
    """What readers who chose `topic_names` would get of the issue with the draft's edits
    (`variant_for`'s rules on the draft: a matchup the draft leaves out is nobody's, one it
    brings back is theirs if it is in their topics), filled for a sample subscriber. No names:
    the whole draft. Writes nothing, as `draft_preview`."""
    issue = require(session, issue_id)
    topics = matchups_service.categories_named(session, topic_names) if topic_names else []
    chosen = frozenset(topics)
    matchups = repository.matchups_of(session, issue)
    by_slug = {matchups[i.matchup_id].slug: i for i in issue.items}
    unknown = sorted(set(draft.matchups) - set(by_slug))
    if unknown:
        raise IssueError(f"matchup {unknown[0]!r} is not in issue {issue_id}")
    items = []
    for slug, item in by_slug.items():
        edit = draft.matchups.get(slug, MatchupDraft())
        summary = item.summary_override
        if edit.summary is not None:
            summary = _override(edit.summary, single_line=False, limit=0)
        position = item.position_override
        if edit.position is not None:
            position = edit.position or None
        excluded = item.excluded if edit.excluded is None else edit.excluded
        items.append(_DraftItem(item.matchup_id, excluded, position, item.position, summary))
    _apply_order(items, matchups)
    items.sort(key=lambda i: i.position)
    included = [i for i in items if not i.excluded]
    names = {c for i in included for c in _categories_of(matchups[i.matchup_id])}
    carried = included
    if chosen and len(names) <= MAX_VARIANT_CATEGORIES:
        # A week of more categories than a variant can name goes whole to everyone.
        carried = [i for i in included if _categories_of(matchups[i.matchup_id]) & chosen]
    slugs = [matchups[i.matchup_id].slug for i in carried]
    if not carried and included:
        return Variant(topics, [], False, False, None)
    values = {
        "subject": _override(draft.subject, single_line=True, limit=verdicts.SUBJECT_CHARS + 60),
        "preheader": _override(
            draft.preheader, single_line=True, limit=verdicts.PREHEADER_CHARS + 60
        ),
        "intro": _override(draft.intro, single_line=False, limit=0),
    }
    shown = _content(
        session,
        issue.week,
        carried,
        matchups,
        subject=values["subject"] if draft.subject is not None else issue.subject_override,
        preheader=values["preheader"] if draft.preheader is not None else issue.preheader_override,
        intro=values["intro"] if draft.intro is not None else issue.intro_override,
    )
    settings = get_settings()
    rendered, _ = render_issue(
        shown,
        base_url=settings.newsletter_base_url,
        site_url=settings.newsletter_site_url,
        tracked=False,
    )
    filled = replace(
        rendered,
        html=fill(rendered.html, PREVIEW_TOKEN),
        text=fill(rendered.text, PREVIEW_TOKEN),
    )
    return Variant(topics, slugs, carried == included, False, filled)


# --- content and rendering -----------------------------------------------------------------


def _community(session: Session, matchup: Matchup) -> CommunityVote | None:
    pct, count = votes.community_split(session, matchup.id)
    if not count or pct is None:
        return None  # no newsletter votes yet: the site's own figure stands
    return CommunityVote(pct, 100 - pct, count)


def last_week_readers(session: Session, week: str) -> ReadersVsPanel | None:
    """The block an issue opens with: the votes on the latest issue readers received before
    `week`."""
    previous = repository.published_before(session, week)
    if previous is None:
        return None
    return votes.readers_vs_panel(
        session, previous.week, repository.issue_matchups(session, previous.id)
    )


class _Listed(Protocol):
    matchup_id: int
    excluded: bool
    summary_override: str | None


def content(
    session: Session, issue: Issue, *, categories: frozenset[str] | None = None
) -> IssueContent:
    """The issue's words; with `categories`, only the matchups with a tool in one of them (a
    variant for readers who chose topics: subject, overview and storyline follow)."""
    matchups = repository.matchups_of(session, issue)
    items: Sequence[_Listed] = issue.items
    if categories is not None:
        items = [i for i in items if _categories_of(matchups[i.matchup_id]) & categories]
    return _content(
        session,
        issue.week,
        items,
        matchups,
        subject=issue.subject_override,
        preheader=issue.preheader_override,
        intro=issue.intro_override,
    )


def _categories_of(matchup: Matchup) -> frozenset[str]:
    return frozenset(tool.category for tool in matchup.tools)


def _content(
    session: Session,
    week: str,
    items: Sequence[_Listed],
    matchups: dict[int, Matchup],
    *,
    subject: str | None,
    preheader: str | None,
    intro: str | None,
) -> IssueContent:
    """The issue's words from its matchups in order, the editor's overrides winning."""
    included = [i for i in items if not i.excluded]
    all_verdicts = verdicts.week_verdicts(
        [
            (matchups[item.matchup_id], _community(session, matchups[item.matchup_id]))
            for item in included
        ]
    )
    return assemble(
        week,
        all_verdicts,
        summaries=[item.summary_override for item in included],
        readers=last_week_readers(session, week),
        subject=subject,
        preheader=preheader,
        intro=intro,
    )


def assemble(
    week: str,
    all_verdicts: list[Verdict],
    *,
    summaries: list[str | None] | None = None,
    readers: ReadersVsPanel | None = None,
    subject: str | None = None,
    preheader: str | None = None,
    intro: str | None = None,
) -> IssueContent:
    """An issue's content from its verdicts (in order) and the editor's words, where given."""
    cap = get_settings().newsletter_max_matchups
    edited = summaries or [None] * len(all_verdicts)
    featured = [
        FeaturedMatchup(v, summary or v.sentences, summary is not None)
        for v, summary in zip(all_verdicts[:cap], edited, strict=False)
    ]
    return IssueContent(
        week=week,
        subject=subject or verdicts.subject_line(all_verdicts),
        preheader=preheader or verdicts.preheader_line(all_verdicts),
        intro=intro or verdicts.intro_text(all_verdicts),
        storylines=verdicts.storylines_beside_lead(all_verdicts),
        featured=featured,
        more=all_verdicts[cap:],
        readers=readers,
    )


def _render(
    session: Session,
    issue: Issue,
    *,
    tracked: bool,
    public: bool = False,
    categories: frozenset[str] | None = None,
) -> tuple[RenderedIssue, list[OutboundLink]]:
    """The issue as it reads now, and the links it points at. Writes nothing: only freezing
    records the links (the click redirect's table)."""
    settings = get_settings()
    return render_issue(
        content(session, issue, categories=categories),
        base_url=settings.newsletter_base_url,
        site_url=settings.newsletter_site_url,
        tracked=tracked,
        public=public,
    )


def _link_row(link: OutboundLink) -> IssueLink:
    return IssueLink(key=link.key, url=link.url, label=link.label, matchup_id=link.matchup_id)


def _frozen_values(session: Session, issue: Issue, now: datetime) -> dict[str, Any]:
    """The three renders a send and the web version keep for good; the tracked one's links
    are recorded, so every click redirect of the sent mail resolves."""
    tracked, links = _render(session, issue, tracked=True)
    repository.record_links(session, issue.id, [_link_row(link) for link in links])
    untracked, _ = _render(session, issue, tracked=False)
    public, _ = _render(session, issue, tracked=False, public=True)
    return {
        "rendered_subject": tracked.subject,
        "rendered_preheader": tracked.preheader,
        "rendered_html": tracked.html,
        "rendered_text": tracked.text,
        "rendered_untracked_html": untracked.html,
        "rendered_untracked_text": untracked.text,
        "rendered_public_html": public.html,
        "rendered_at": now,
    }


def freeze(session: Session, issue_id: int, *, now: datetime | None = None) -> None:
    """Fix what a send sends: the renders and their links. Approval freezes; this freezes an
    issue approved before approval did (older rows), when its send starts. A draft is never
    frozen (its edits must still show); an issue frozen already is left as it is."""
    issue = require(session, issue_id)
    if issue.rendered_at is not None or issue.status is IssueStatus.DRAFT:
        return
    for column, value in _frozen_values(session, issue, now or utcnow()).items():
        setattr(issue, column, value)
    session.flush()


# --- variants: the issue for readers who chose topics ---------------------------------------

# A variant is named by a bit per category of the week (a 64-bit column): a week of more
# categories than this sends everyone the whole issue.
MAX_VARIANT_CATEGORIES = 62


def topic_bits(session: Session, issue_id: int) -> dict[str, int]:
    """A bit per category of the issue's matchups (sorted by name), or nothing when there are
    too many for a variant's mask."""
    issue = require(session, issue_id)
    matchups = repository.matchups_of(session, issue)
    names = sorted(
        {
            c
            for item in issue.items
            if not item.excluded
            for c in _categories_of(matchups[item.matchup_id])
        }
    )
    if len(names) > MAX_VARIANT_CATEGORIES:
        return {}
    return {name: 1 << index for index, name in enumerate(names)}


def freeze_variants(
    session: Session, issue_id: int, masks: Sequence[int], *, now: datetime | None = None
) -> dict[int, int | None]:
    """Freeze the variant of each mask (`topic_bits`' bits of the chosen categories) and record
    its links; returns what each delivery of that mask should name: the mask itself, or None
    when its readers' topics take in every matchup (they get the whole issue). One render per
    distinct set of matchups, however many masks lead to it."""
    issue = require(session, issue_id)
    bits = topic_bits(session, issue_id)
    matchups = repository.matchups_of(session, issue)
    included = [i.matchup_id for i in issue.items if not i.excluded]
    made: dict[tuple[int, ...], IssueVariant] = {}
    kept = {v.mask: v for v in repository.variants_of(session, issue_id)}
    chosen: dict[int, int | None] = {}
    for mask in masks:
        categories = frozenset(name for name, bit in bits.items() if mask & bit)
        carried = tuple(m for m in included if _categories_of(matchups[m]) & categories)
        if carried == tuple(included):
            chosen[mask] = None
            continue
        chosen[mask] = mask
        if mask in kept:
            continue
        if carried in made:
            variant = IssueVariant(**{c: getattr(made[carried], c) for c in _VARIANT_RENDERS})
        else:
            tracked, links = _render(session, issue, tracked=True, categories=categories)
            repository.record_links(session, issue.id, [_link_row(link) for link in links])
            untracked, _ = _render(session, issue, tracked=False, categories=categories)
            variant = IssueVariant(
                subject=tracked.subject,
                preheader=tracked.preheader,
                html=tracked.html,
                text=tracked.text,
                untracked_html=untracked.html,
                untracked_text=untracked.text,
            )
            made[carried] = variant
        variant.issue_id = issue_id
        variant.mask = mask
        variant.categories = "; ".join(sorted(categories))
        variant.matchup_ids = ",".join(str(m) for m in carried)
        variant.created_at = now or utcnow()
        repository.add_variant(session, variant)
    return chosen


_VARIANT_RENDERS = ("subject", "preheader", "html", "text", "untracked_html", "untracked_text")


def _test_subjects(session: Session, issue_id: int) -> list[str]:
    # issues/subjects.py builds on this module (the state checks): read here, not imported.
    from newsletter.issues.subjects import subject_texts

    return subject_texts(session, issue_id)


def variant_summaries(session: Session, issue_id: int) -> list[dict[str, Any]]:
    """Each frozen variant: its topics, subject and matchups (for the editor and the CLI). The
    subject is None with a subject test: its readers got the test's subjects."""
    tested = bool(_test_subjects(session, issue_id))
    return [
        {
            "mask": v.mask,
            "categories": v.categories.split("; ") if v.categories else [],
            "subject": None if tested else v.subject,
            "matchup_ids": [int(m) for m in v.matchup_ids.split(",") if m],
        }
        for v in repository.variants_of(session, issue_id)
    ]


def frozen_content(
    session: Session, issue_id: int, *, tracked: bool, variant: int | None = None
) -> RenderedIssue:
    """What is sent: the frozen render (of `variant`, when the reader chose topics). Reading
    writes nothing: an issue not frozen (a draft for a test send, or an older row approved
    before approval froze) is rendered from its current content each time; `freeze` is the
    write."""
    if variant is not None:
        frozen = repository.variant(session, issue_id, variant)
        if frozen is None:
            raise IssueError(f"issue {issue_id} has no variant {variant}")
        return RenderedIssue(
            subject=frozen.subject,
            preheader=frozen.preheader,
            html=frozen.html if tracked else frozen.untracked_html,
            text=frozen.text if tracked else frozen.untracked_text,
        )
    issue = require(session, issue_id)
    if issue.rendered_at is None:
        return _render(session, issue, tracked=tracked)[0]
    html = issue.rendered_html if tracked else issue.rendered_untracked_html
    text = issue.rendered_text if tracked else issue.rendered_untracked_text
    assert issue.rendered_subject is not None and html is not None and text is not None
    return RenderedIssue(
        subject=issue.rendered_subject,
        preheader=issue.rendered_preheader or "",
        html=html,
        text=text,
    )


def preview(session: Session, issue_id: int) -> tuple[str, str]:
    """(html, text) as a subscriber gets it, with the placeholder filled by the preview token.

    The untracked copy: it reads the same, and its links open their targets (or, for the
    per-reader ones, a page saying what they do) rather than the click redirect, which only
    knows real deliveries."""
    rendered = frozen_content(session, issue_id, tracked=False)
    return fill(rendered.html, PREVIEW_TOKEN), fill(rendered.text, PREVIEW_TOKEN)


@dataclass(frozen=True)
class Variant:
    """What readers of `topics` get of an issue: the matchups (slugs, in the issue's order)
    and the untracked copy, placeholders unfilled. `whole`: their topics take in every
    matchup, so they get the whole issue. No matchups: they get no mail this week (their
    delivery is skipped) and `rendered` is None. `frozen`: the copy the send froze for them,
    not one made for the asking."""

    topics: list[str]
    matchups: list[str]
    whole: bool
    frozen: bool
    rendered: RenderedIssue | None
    # The issue's subject test: each reader's subject is one of these (the winner's for the
    # rest), not the copy's own. Empty without a test; filled by `variant_for` (a draft's
    # live preview shows only the copy, and is rendered on every pause in the typing).
    test_subjects: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.matchups

    # The copy's parts, empty when these readers get no mail.
    @property
    def subject(self) -> str:
        return self.rendered.subject if self.rendered else ""

    @property
    def html(self) -> str:
        return self.rendered.html if self.rendered else ""

    @property
    def text(self) -> str:
        return self.rendered.text if self.rendered else ""


def variant_for(session: Session, issue_id: int, topic_names: Sequence[str]) -> Variant:
    """The issue as a reader who chose `topic_names` gets it (names as readers type them:
    case, spacing and full-width letters aside; a name that is no topic is refused with the
    list, matchups.service.TopicError). No names: every topic, the whole issue. Writes
    nothing: a variant not frozen yet (before the send) is rendered for the asking. With a
    subject test, `test_subjects` are the subjects its readers get."""
    found = _variant_for(session, issue_id, topic_names)
    return replace(found, test_subjects=tuple(_test_subjects(session, issue_id)))


def _variant_for(session: Session, issue_id: int, topic_names: Sequence[str]) -> Variant:
    issue = require(session, issue_id)
    topics = matchups_service.categories_named(session, topic_names)
    chosen = frozenset(topics)
    matchups = repository.matchups_of(session, issue)
    included = [i.matchup_id for i in issue.items if not i.excluded]
    bits = topic_bits(session, issue_id)
    if not chosen or not bits:
        # No topics, or a week of more categories than a variant can name: the whole issue.
        carried = included
    else:
        carried = [m for m in included if _categories_of(matchups[m]) & chosen]
    slugs = [matchups[m].slug for m in carried]
    frozen = issue.rendered_at is not None
    if not carried:
        return Variant(topics, [], False, False, None)
    if carried == included:
        return Variant(
            topics, slugs, True, frozen, frozen_content(session, issue_id, tracked=False)
        )
    mask = sum(bit for name, bit in bits.items() if name in chosen)
    kept = repository.variant(session, issue_id, mask) if frozen else None
    if kept is not None:
        copy = RenderedIssue(
            subject=kept.subject,
            preheader=kept.preheader,
            html=kept.untracked_html,
            text=kept.untracked_text,
        )
        return Variant(topics, slugs, False, True, copy)
    rendered, _ = _render(session, issue, tracked=False, categories=chosen)
    return Variant(topics, slugs, False, False, rendered)


def variant_preview(session: Session, issue_id: int, topic_names: Sequence[str]) -> Variant:
    """What `variant_for` says, its copy filled for a sample subscriber (as `preview`)."""
    found = variant_for(session, issue_id, topic_names)
    copy = found.rendered
    if copy is None:
        return found
    filled = replace(copy, html=fill(copy.html, PREVIEW_TOKEN), text=fill(copy.text, PREVIEW_TOKEN))
    return replace(found, rendered=filled)


def public_html(session: Session, week: str) -> str | None:
    """The "view in browser" page of an approved or sent issue: the public render, frozen with
    the subscribers' copies. It carries nobody's links (a reader who was forwarded it must not
    unsubscribe the sender), its vote buttons lead to the public vote page, and its footer
    offers a subscription instead of "you get this because you subscribed"."""
    issue = repository.get_by_week(session, week)
    if issue is None or issue.status in (IssueStatus.DRAFT, IssueStatus.CANCELLED):
        return None
    if issue.rendered_public_html is None:
        # Not frozen, or frozen before the public render existed (revision 0002): rendered
        # from the issue as it is, and not stored (a page view writes nothing).
        return _render(session, issue, tracked=False, public=True)[0].html
    return issue.rendered_public_html


def latest_published_week(session: Session) -> str | None:
    """The week of the latest issue readers received (its web version is public)."""
    latest = repository.published_before(session, "9999-W99")
    return latest.week if latest is not None else None


# --- the state machine ---------------------------------------------------------------------


def approve(session: Session, issue_id: int, *, by: str, now: datetime | None = None) -> Issue:
    now = now or utcnow()
    # Locked first: two schedulers auto-approving together both froze the issue, and the
    # second's links collided with the first's (a unique violation, an error and a retry).
    # Now the second waits, reads it approved and is refused as "moved meanwhile".
    issue = repository.get(session, issue_id, lock=True)
    if issue is None:
        raise IssueNotFound(f"no issue with id {issue_id}")
    if issue.status is not IssueStatus.DRAFT:
        raise IssueError(f"issue {issue_id} is {issue.status.value}; only a draft can be approved")
    if not any(not item.excluded for item in issue.items):
        raise IssueError(f"issue {issue_id} ({issue.week}) has no matchups to send")
    values = _frozen_values(session, issue, now)
    if not repository.transition(
        session,
        issue_id,
        (IssueStatus.DRAFT,),
        IssueStatus.APPROVED,
        approved_at=now,
        approved_by=by,
        **values,
    ):
        raise IssueError(f"issue {issue_id} changed state meanwhile; it was not approved")
    return require(session, issue_id)


def local_time(moment: datetime) -> str:
    """A moment as people read it here: in NEWSLETTER_TIMEZONE, with the zone named."""
    zone = _zone()
    return f"{moment.astimezone(zone):%a %d %b %Y %H:%M %Z} ({zone.key})"


def parse_send_time(value: str) -> datetime:
    """An ISO 8601 send time from a person (CLI, form, API); without an offset it is a wall
    time in NEWSLETTER_TIMEZONE, the one rule every door follows."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise IssueError(
            f"{value[:60]!r} is not a date and time (ISO 8601, e.g. 2026-03-02T09:00)"
        ) from None
    return _in_zone(when)


# A send time beyond these cannot be shown in every zone (year 1 at +01:00 is before year 1 in
# UTC: Python raises OverflowError), and none is meant.
SEND_YEARS = (2000, 9998)


def _in_zone(when: datetime) -> datetime:
    if not SEND_YEARS[0] <= when.year <= SEND_YEARS[1]:
        raise IssueError(
            f"{when.isoformat()[:40]} is not a send time (years {SEND_YEARS[0]} to "
            f"{SEND_YEARS[1]}); choose a later time, or send it now"
        )
    if when.tzinfo is not None:
        return when
    zone = _zone()
    local = when.replace(tzinfo=zone)
    # A wall time the clocks skip (spring forward) comes back different from a round trip.
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != when:
        raise IssueError(
            f"{when:%Y-%m-%d %H:%M} does not exist in {zone.key} (the clocks skip it); "
            "choose another time"
        )
    return local


def schedule(
    session: Session, issue_id: int, at: datetime, *, now: datetime | None = None
) -> Issue:
    """Send an approved issue at `at` (a time without a zone is in NEWSLETTER_TIMEZONE)."""
    at = _in_zone(at)
    now = now or utcnow()
    if at <= now:
        raise IssueError(
            f"{local_time(at)} is in the past (it is now {local_time(now)}): "
            "choose a later time, or send it now"
        )
    issue = require(session, issue_id)
    if issue.status not in (IssueStatus.APPROVED, IssueStatus.SCHEDULED):
        raise IssueError(f"issue {issue_id} is {issue.status.value}; approve it before scheduling")
    if not repository.transition(
        session,
        issue_id,
        (IssueStatus.APPROVED, IssueStatus.SCHEDULED),
        IssueStatus.SCHEDULED,
        scheduled_at=at.astimezone(UTC),
    ):
        raise IssueError(f"issue {issue_id} changed state meanwhile; it was not scheduled")
    return require(session, issue_id)


def unschedule(session: Session, issue_id: int) -> Issue:
    """scheduled -> approved: no send time, the approval and the frozen content stay."""
    issue = require(session, issue_id)
    if issue.status is not IssueStatus.SCHEDULED:
        raise IssueError(f"issue {issue_id} is {issue.status.value}, not scheduled")
    if not repository.transition(
        session, issue_id, (IssueStatus.SCHEDULED,), IssueStatus.APPROVED, scheduled_at=None
    ):
        raise IssueError(f"issue {issue_id} changed state meanwhile; it was not unscheduled")
    return require(session, issue_id)


def cancel(session: Session, issue_id: int) -> Issue:
    issue = require(session, issue_id)
    if issue.status not in CANCELLABLE:
        raise IssueError(f"issue {issue_id} is {issue.status.value}; it can no longer be cancelled")
    if not repository.transition(session, issue_id, CANCELLABLE, IssueStatus.CANCELLED):
        raise IssueError(f"issue {issue_id} changed state meanwhile; it was not cancelled")
    return require(session, issue_id)


# --- reporting -----------------------------------------------------------------------------


def to_json(session: Session, issue: Issue) -> dict[str, Any]:
    matchups = repository.matchups_of(session, issue)
    cap = get_settings().newsletter_max_matchups
    included = [matchups[i.matchup_id].slug for i in issue.items if not i.excluded]
    return {
        "id": issue.id,
        "week": issue.week,
        "status": issue.status.value,
        "cutoff_at": issue.cutoff_at.isoformat(),
        "subject": issue.rendered_subject or issue.subject_override,
        "matchups": included,
        "featured": included[:cap],
        "more_this_week": included[cap:],
        "excluded": [matchups[i.matchup_id].slug for i in issue.items if i.excluded],
        "overrides": {
            "subject": issue.subject_override,
            "preheader": issue.preheader_override,
            "intro": issue.intro_override,
            "matchups": {
                matchups[i.matchup_id].slug: {
                    "summary": i.summary_override,
                    "position": i.position_override,
                    "excluded": i.excluded,
                }
                for i in issue.items
                if i.summary_override or i.position_override or i.excluded
            },
        },
        "scheduled_at": issue.scheduled_at.isoformat() if issue.scheduled_at else None,
        "approved_at": issue.approved_at.isoformat() if issue.approved_at else None,
        "approved_by": issue.approved_by,
        "rendered_at": issue.rendered_at.isoformat() if issue.rendered_at else None,
        # Who it goes to: a segment's id (None: everyone), and once the send started what that
        # was (the segment's name and rule then, and how many were in it).
        "segment_id": issue.segment_id,
        "audience": issue.audience,
    }


# --- reads for the ledger, tracking, the scheduler and the doors -----------------------------
# (issues/repository.py is this domain's own: the contract lets nobody else import it)


def get(session: Session, issue_id: int) -> Issue | None:
    return repository.get(session, issue_id)


def resumed_at(session: Session, issue_id: int) -> datetime | None:
    """When an editor last resumed the issue's paused send (None: never)."""
    return repository.resumed_at(session, issue_id)


def get_by_week(session: Session, week: str) -> Issue | None:
    return repository.get_by_week(session, week)


def list_all(session: Session) -> list[Issue]:
    """Newest week first."""
    return repository.list_all(session)


def matchups_of(session: Session, issue: Issue) -> dict[int, Matchup]:
    return repository.matchups_of(session, issue)


def links_of(session: Session, issue_id: int) -> list[IssueLink]:
    """The links the frozen tracked render points at (the click redirect's table)."""
    return repository.links_of(session, issue_id)


def due_issues(session: Session, now: datetime) -> list[Issue]:
    return repository.due_issues(session, now)


def issue_matchups(session: Session, issue_id: int) -> list[tuple[int, str, list[str]]]:
    return repository.issue_matchups(session, issue_id)


def matchup_in_issue(session: Session, issue_id: int, matchup_id: int) -> bool:
    return repository.matchup_in_issue(session, issue_id, matchup_id)


def latest_sent_issue_id(session: Session) -> int | None:
    return repository.latest_sent_issue_id(session)


def last_sent_issues(session: Session, count: int) -> list[tuple[int, datetime | None]]:
    """(id, sent at) of the latest `count` sent issues, newest first."""
    return repository.last_sent_issues(session, count)
