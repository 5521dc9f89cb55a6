"""The JSON API for staff operations: `Authorization: Bearer <token>` from
`newsletter users token EMAIL`. Editors may read and move issues; subscriber operations are
admin-only. Described at /openapi.json.

No cookies are read here, so a cross-site page cannot ride a signed-in browser: no CSRF token
is needed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field

from newsletter.audience.rules import Rule
from newsletter.db import transaction
from newsletter.errors import NotFound, Refused
from newsletter.issues import service as issues
from newsletter.numbers import MAX_ROW_ID
from newsletter.people import erasure
from newsletter.sending import service as sending
from newsletter.web.auth import ApiAdmin, ApiUser
from subscribers import listing

router = APIRouter(prefix="/api/v1", tags=["staff api"])


class Me(BaseModel):
    id: int
    email: str
    role: str


class IssueSummary(BaseModel):
    id: int
    week: str
    status: str
    subject: str | None
    scheduled_at: datetime | None
    sent_at: datetime | None


class ScheduleRequest(BaseModel):
    at: datetime = Field(
        description="When to send (ISO 8601); without an offset, in NEWSLETTER_TIMEZONE."
    )


class SubscriberOut(BaseModel):
    id: int
    email: str
    name: str
    status: str
    paused: bool
    topics: list[str] = Field(description="The topics they chose; empty means every topic.")
    created_at: datetime


class SubscriberPage(BaseModel):
    items: list[SubscriberOut]
    next_before: int | None = Field(description="Pass as `before` for the next page.")


class NewSubscriber(BaseModel):
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)


class ActionResult(BaseModel):
    id: int
    outcome: str


class TopicChoice(BaseModel):
    topics: list[str] = Field(
        max_length=50,
        description="Category names (GET /api/v1/topics); an empty list means every topic.",
    )


class Topics(BaseModel):
    id: int
    topics: list[str]


def _refused(exc: Exception, status: int = 409) -> HTTPException:
    if isinstance(exc, NotFound):
        status = 404
    return HTTPException(status_code=status, detail=str(exc))


def _invalid(where: tuple[str, ...], exc: Exception) -> HTTPException:
    """A 422 in the shape FastAPI documents for every operation (a list of field errors), so a
    client written against /openapi.json parses our own refusals too."""
    detail = [{"loc": list(where), "msg": str(exc), "type": "value_error"}]
    return HTTPException(status_code=422, detail=detail)


@router.get("/me", response_model=Me)
def me(user: ApiUser) -> Me:
    return Me(id=user.id, email=user.email, role=user.role.value)


@router.get("/issues", response_model=list[IssueSummary])
def list_issues(user: ApiUser) -> list[IssueSummary]:
    with transaction() as session:
        return [
            IssueSummary(
                id=i.id,
                week=i.week,
                status=i.status.value,
                subject=i.rendered_subject or i.subject_override,
                scheduled_at=i.scheduled_at,
                sent_at=i.sent_at,
            )
            for i in issues.list_all(session)
        ]


@router.get("/issues/{issue_id}")
def get_issue(issue_id: int, user: ApiUser) -> dict[str, Any]:
    """The issue with its matchups and the editor's overrides."""
    with transaction() as session:
        issue = issues.get(session, issue_id)
        if issue is None:
            raise HTTPException(status_code=404, detail=f"no issue with id {issue_id}")
        return issues.to_json(session, issue)


@router.post("/issues/{issue_id}/approve")
def approve_issue(issue_id: int, user: ApiUser) -> dict[str, Any]:
    try:
        with transaction() as session:
            issue = issues.approve(session, issue_id, by=user.email)
            return issues.to_json(session, issue)
    except issues.IssueError as exc:
        raise _refused(exc) from exc


@router.post("/issues/{issue_id}/schedule")
def schedule_issue(issue_id: int, body: ScheduleRequest, user: ApiUser) -> dict[str, Any]:
    try:
        with transaction() as session:
            issue = issues.schedule(session, issue_id, body.at)
            return issues.to_json(session, issue)
    except issues.IssueError as exc:
        raise _refused(exc) from exc


@router.post("/issues/{issue_id}/cancel")
def cancel_issue(issue_id: int, user: ApiUser) -> dict[str, Any]:
    try:
        with transaction() as session:
            # Before or during its send: a paused send's queued deliveries are skipped too.
            sending.cancel(session, issue_id)
            return issues.to_json(session, issues.require(session, issue_id))
    except Refused as exc:
        raise _refused(exc) from exc


@router.get("/issues/{issue_id}/stats")
def issue_numbers(issue_id: int, user: ApiUser) -> dict[str, Any]:
    """Opens, clicks, votes and delivery counts (the same numbers as `newsletter stats --json`)."""
    from newsletter.audience import subject_tests
    from newsletter.issues.service import IssueNotFound
    from newsletter.tracking.stats import issue_stats

    try:
        with transaction() as session:
            numbers = issue_stats(session, issue_id)
            numbers["subject_test"] = subject_tests.report(session, issue_id)
            return numbers
    except IssueNotFound as exc:
        raise _refused(exc, 404) from exc


@router.get("/subscribers", response_model=SubscriberPage)
def list_subscribers(
    user: ApiAdmin,
    q: str = Query("", max_length=200, description="Address prefix or part of a name."),
    status: str | None = None,
    before: int | None = Query(None, description="Keyset: ids below this one."),
    limit: int = Query(100, ge=1, le=1000),
) -> SubscriberPage:
    from subscribers.models import SubscriberStatus

    try:
        wanted = SubscriberStatus(status) if status else None
    except ValueError:
        raise _invalid(("query", "status"), ValueError(f"unknown status {status!r}")) from None
    with transaction() as session:
        return _page(session, limit, status=wanted, search=q or None, before_id=before)


def _page(session: Any, limit: int, **filters: Any) -> SubscriberPage:
    from subscribers import service

    rows = listing.subscribers_page(session, limit=limit + 1, **filters)
    topics = service.topics_by_subscriber(session, [s.id for s in rows[:limit]])
    items = [
        SubscriberOut(
            id=s.id,
            email=s.email,
            name=s.name,
            status=s.status.value,
            paused=s.paused,
            topics=topics.get(s.id, []),
            created_at=s.created_at,
        )
        for s in rows[:limit]
    ]
    return SubscriberPage(items=items, next_before=items[-1].id if len(rows) > limit else None)


@router.post("/subscribers", response_model=ActionResult, status_code=201)
def add_subscriber(body: NewSubscriber, user: ApiAdmin) -> ActionResult:
    from subscribers import service
    from subscribers.addresses import InvalidAddress

    try:
        with transaction() as session:
            subscriber, outcome = service.add_by_admin(session, body.email, body.name, source="api")
            return ActionResult(id=subscriber.id, outcome=outcome.value)
    except InvalidAddress as exc:
        raise _invalid(("body", "email"), exc) from exc
    except service.SubscriberError as exc:
        raise _refused(exc) from exc


@router.get("/topics")
def topics(user: ApiUser) -> dict[str, list[str]]:
    """The topics readers choose from: the categories of the published matchups."""
    from newsletter.matchups import service as matchups

    with transaction() as session:
        return {"topics": matchups.categories(session)}


@router.put("/subscribers/{subscriber_id}/topics", response_model=Topics)
def set_topics(subscriber_id: int, body: TopicChoice, user: ApiAdmin) -> Topics:
    """Replace what someone reads (what they asked for by mail, say)."""
    from newsletter.matchups import service as matchups
    from subscribers import service

    try:
        with transaction() as session:
            if not 0 < subscriber_id <= MAX_ROW_ID or service.get(session, subscriber_id) is None:
                raise HTTPException(404, detail=f"no subscriber with id {subscriber_id}")
            names = matchups.categories_named(
                session, body.topics, also=service.topics_of(session, subscriber_id)
            )
            return Topics(
                id=subscriber_id, topics=service.set_topics(session, subscriber_id, names)
            )
    except matchups.TopicError as exc:
        raise _invalid(("body", "topics"), exc) from exc


@router.post("/subscribers/{subscriber_id}/unsubscribe", response_model=ActionResult)
def unsubscribe(subscriber_id: int, user: ApiAdmin) -> ActionResult:
    from subscribers import service

    with transaction() as session:
        changed = service.unsubscribe(session, subscriber_id, reason="admin")
    return ActionResult(id=subscriber_id, outcome="unsubscribed" if changed else "unchanged")


@router.delete("/subscribers/{subscriber_id}", response_model=ActionResult)
def erase(subscriber_id: int, user: ApiAdmin) -> ActionResult:
    """GDPR erasure: personal data removed, the address stays suppressed as a hash."""

    with transaction() as session:
        if not erasure.erase(session, subscriber_id):
            raise HTTPException(status_code=404, detail=f"no subscriber with id {subscriber_id}")
    return ActionResult(id=subscriber_id, outcome="erased")


# --- segments (newsletter/audience) ----------------------------------------------------------


class SegmentOut(BaseModel):
    id: int
    name: str
    rule: dict[str, Any] = Field(description="Only the conditions given (see SegmentIn).")
    described: str
    members: int = Field(description="Members now, any status unless the rule names some.")
    mailable: int = Field(description="Of them, how many an issue sent now would go to.")
    created_by: str
    created_at: datetime
    updated_at: datetime


class SegmentIn(BaseModel):
    name: str = Field(max_length=200)
    rule: Rule = Field(
        default_factory=Rule,
        description="Every condition given must hold; within a list, any of its values.",
    )


class SegmentChange(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    rule: Rule | None = Field(default=None, description="Replaces the rule whole.")


class AudienceChoice(BaseModel):
    segment_id: int | None = Field(description="A segment's id; null sends to everyone.")


class Audience(BaseModel):
    id: int
    segment_id: int | None
    segment: str | None
    would_be_mailed: int
    approval_withdrawn: bool


def _segment_refused(exc: Exception) -> HTTPException:
    from newsletter.audience.rules import RuleError

    if isinstance(exc, RuleError):
        where, _, message = str(exc).partition(": ")
        return _invalid(("body", *where.split(".")), ValueError(message or str(exc)))
    return _refused(exc)


@router.get("/segments", response_model=list[SegmentOut])
def list_segments(user: ApiUser) -> list[SegmentOut]:
    """Every segment with its live counts (editors choose one as an issue's audience)."""
    from newsletter.audience import service as audiences

    with transaction() as session:
        return [
            SegmentOut(**audiences.summary(session, s)) for s in audiences.all_segments(session)
        ]


@router.post("/segments", response_model=SegmentOut, status_code=201)
def create_segment(body: SegmentIn, user: ApiAdmin) -> SegmentOut:
    from newsletter.audience import service as audiences

    try:
        with transaction() as session:
            segment = audiences.create(session, body.name, body.rule.to_json(), by=user.email)
            return SegmentOut(**audiences.summary(session, segment))
    except Refused as exc:
        raise _segment_refused(exc) from exc


@router.get("/segments/{segment_id}", response_model=SegmentOut)
def get_segment(segment_id: int, user: ApiUser) -> SegmentOut:
    from newsletter.audience import service as audiences

    try:
        with transaction() as session:
            return SegmentOut(**audiences.summary(session, audiences.get(session, segment_id)))
    except Refused as exc:
        raise _refused(exc) from exc


@router.put("/segments/{segment_id}", response_model=SegmentOut)
def change_segment(segment_id: int, body: SegmentChange, user: ApiAdmin) -> SegmentOut:
    from newsletter.audience import service as audiences

    try:
        with transaction() as session:
            segment = audiences.change(
                session,
                segment_id,
                name=body.name,
                raw_rule=body.rule.to_json() if body.rule is not None else None,
            )
            return SegmentOut(**audiences.summary(session, segment))
    except Refused as exc:
        raise _segment_refused(exc) from exc


@router.delete("/segments/{segment_id}", response_model=ActionResult)
def delete_segment(segment_id: int, user: ApiAdmin) -> ActionResult:
    """Nobody is changed (a segment is a filter); refused (409) while an unsent issue goes to
    it."""
    from newsletter.audience import service as audiences

    try:
        with transaction() as session:
            audiences.delete(session, segment_id)
    except Refused as exc:
        raise _refused(exc) from exc
    return ActionResult(id=segment_id, outcome="deleted")


@router.get("/segments/{segment_id}/subscribers", response_model=SubscriberPage)
def segment_members(
    segment_id: int,
    user: ApiAdmin,
    before: int | None = Query(None, description="Keyset: ids below this one."),
    limit: int = Query(100, ge=1, le=1000),
) -> SubscriberPage:
    """The segment's members now, newest first, in pages."""
    from newsletter.audience import service as audiences

    try:
        with transaction() as session:
            within = audiences.members(session, audiences.get(session, segment_id))
            return _page(session, limit, before_id=before, within=within)
    except Refused as exc:
        raise _refused(exc) from exc


@router.put("/issues/{issue_id}/audience", response_model=Audience)
def set_issue_audience(issue_id: int, body: AudienceChoice, user: ApiUser) -> Audience:
    """Send the issue to a segment, or to everyone; changing it withdraws an approval."""
    from newsletter.audience import service as audiences

    try:
        with transaction() as session:
            reopened = audiences.set_issue_audience(session, issue_id, body.segment_id)
            segment, count = audiences.audience_of(session, issue_id)
            return Audience(
                id=issue_id,
                segment_id=segment.id if segment else None,
                segment=segment.name if segment else None,
                would_be_mailed=count,
                approval_withdrawn=reopened,
            )
    except Refused as exc:
        raise _refused(exc) from exc


# --- subject tests (newsletter/audience/subject_tests.py) -------------------------------------


class SubjectTestIn(BaseModel):
    # Strict: a misspelt field ("wait") or a loose type ("20", true) is refused, not taken as a
    # default or a 1% test.
    model_config = ConfigDict(extra="forbid", strict=True)

    subjects: list[str] = Field(
        min_length=2, max_length=4, description="Two to four subjects, the first is number 1."
    )
    share: int = Field(default=20, ge=1, le=100, description="Percent of the audience tested.")
    wait_minutes: int = Field(
        default=240, ge=1, le=10080, description="From the send's start to the winner's send."
    )


class WinnerChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    winner: int | None = Field(
        default=None,
        ge=1,
        le=4,
        description="The subject's number; null: the one leading by clicks and votes now.",
    )


@router.get("/issues/{issue_id}/subject-test")
def get_subject_test(issue_id: int, user: ApiUser) -> dict[str, Any]:
    """The issue's subject test: its subjects, share, wait, phase, each subject's figures and
    the decision (404 when it has none)."""
    from newsletter.audience import subject_tests

    try:
        with transaction() as session:
            issues.require(session, issue_id)
            found = subject_tests.report(session, issue_id)
    except Refused as exc:
        raise _refused(exc) from exc
    if found is None:
        raise HTTPException(status_code=404, detail=f"issue {issue_id} has no subject test")
    return found


@router.put("/issues/{issue_id}/subject-test")
def set_subject_test(issue_id: int, body: SubjectTestIn, user: ApiUser) -> dict[str, Any]:
    """Set or change the test before the send; an approval is withdrawn (409 once the send has
    started, 422 for a subject refused)."""
    from newsletter.audience import subject_tests

    try:
        with transaction() as session:
            reopened = subject_tests.set_test(
                session,
                issue_id,
                body.subjects,
                share=body.share,
                wait_minutes=body.wait_minutes,
                by=user.email,
            )
            found = subject_tests.report(session, issue_id)
    except subject_tests.SubjectTestError as exc:
        if "too late" in str(exc):
            raise _refused(exc) from exc
        raise _invalid(("body", "subjects"), exc) from exc
    except Refused as exc:
        raise _refused(exc) from exc
    return {**(found or {}), "approval_withdrawn": reopened}


@router.delete("/issues/{issue_id}/subject-test", response_model=ActionResult)
def remove_subject_test(issue_id: int, user: ApiUser) -> ActionResult:
    from newsletter.audience import subject_tests

    try:
        with transaction() as session:
            if subject_tests.get(session, issue_id) is None:
                issues.require(session, issue_id)
                raise HTTPException(status_code=404, detail=f"issue {issue_id} has no subject test")
            reopened = subject_tests.remove_test(session, issue_id)
    except Refused as exc:
        raise _refused(exc) from exc
    return ActionResult(
        id=issue_id, outcome="removed; approval withdrawn" if reopened else "removed"
    )


@router.post("/issues/{issue_id}/subject-test/winner")
def pick_subject_winner(issue_id: int, body: WinnerChoice, user: ApiUser) -> dict[str, Any]:
    """Send a subject to everyone else now (the scheduler's workers deliver it); 409 when the
    test has not started or was decided already."""
    from newsletter.audience import subject_tests

    try:
        with transaction() as session:
            decision = subject_tests.decide(
                session, issue_id, winner=body.winner, by=f"api {user.email}"
            )
            if decision is None:
                raise HTTPException(
                    status_code=409, detail=f"issue {issue_id}'s subject test was decided already"
                )
            found = subject_tests.report(session, issue_id)
    except Refused as exc:
        raise _refused(exc) from exc
    return {**(found or {}), "rest": decision.rest}
