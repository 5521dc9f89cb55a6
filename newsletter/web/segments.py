"""The admin's segments: saved filters over the list (newsletter/audience), each counted live,
with its members one click away (the subscriber list under `?segment=ID`, where the bulk
actions and the export take it too). Editors choose one as an issue's audience on the issue's
page; making them is the admin's, as the list is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from newsletter import paths
from newsletter.audience import service as audiences
from newsletter.audience.rules import MAX_ISSUES, Rule, RuleError
from newsletter.db import transaction
from newsletter.errors import Refused
from newsletter.matchups.service import categories
from newsletter.web import csrf
from newsletter.web.auth import Admin, require_admin
from newsletter.web.pages import flash, redirect, render
from subscribers import listing
from subscribers.models import SubscriberStatus

router = APIRouter(
    prefix=paths.ADMIN_SEGMENTS,
    dependencies=[Depends(require_admin), Depends(csrf.require_csrf)],
    include_in_schema=False,
)

# The tags offered as checkboxes; past this many the form takes them typed, `;` between.
TAG_BOXES = 200

Many = Annotated[list[str] | None, Form()]


def _number(raw: str, field: str) -> int | None:
    text = raw.strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 6:
        raise RuleError(f"rule.{field}: a whole number of issues, 1 to {MAX_ISSUES}")
    return int(text)


def _names(boxes: list[str] | None, typed: str) -> list[str]:
    return [*(boxes or []), *(t for t in typed.split(";") if t.strip())]


@dataclass(frozen=True)
class RuleForm:
    """The rule's fields of the segment form (the create and the edit form alike)."""

    statuses: list[str] | None
    topics: list[str] | None
    tags: list[str] | None
    tags_typed: str
    joined_after: str
    joined_before: str
    sources: str
    engaged_in_last: str
    not_engaged_in_last: str
    never_opened: str

    def raw(self) -> dict[str, Any]:
        """The rule as the audience's `parse` reads it (a number field checked here)."""
        raw: dict[str, Any] = {
            "statuses": self.statuses or [],
            "topics": self.topics or [],
            "tags": _names(self.tags, self.tags_typed),
            "sources": [s for s in self.sources.split(",") if s.strip()],
            "engaged_in_last": _number(self.engaged_in_last, "engaged_in_last"),
            "not_engaged_in_last": _number(self.not_engaged_in_last, "not_engaged_in_last"),
            "never_opened": bool(self.never_opened),
        }
        for key, value in (
            ("joined_after", self.joined_after),
            ("joined_before", self.joined_before),
        ):
            if value.strip():
                raw[key] = value.strip()
        return raw

    def echo(self) -> dict[str, Any]:
        """What was typed, shown back on a refused form."""
        return {
            "statuses": self.statuses or [],
            "topics": self.topics or [],
            "tags": self.tags or [],
            "tags_typed": self.tags_typed,
            "joined_after": self.joined_after,
            "joined_before": self.joined_before,
            "sources": self.sources,
            "engaged_in_last": self.engaged_in_last,
            "not_engaged_in_last": self.not_engaged_in_last,
            "never_opened": bool(self.never_opened),
        }


def rule_form(
    statuses: Many = None,
    topics: Many = None,
    tags: Many = None,
    tags_typed: Annotated[str, Form(max_length=6000)] = "",
    joined_after: Annotated[str, Form(max_length=40)] = "",
    joined_before: Annotated[str, Form(max_length=40)] = "",
    sources: Annotated[str, Form(max_length=2000)] = "",
    engaged_in_last: Annotated[str, Form(max_length=20)] = "",
    not_engaged_in_last: Annotated[str, Form(max_length=20)] = "",
    never_opened: Annotated[str, Form(max_length=10)] = "",
) -> RuleForm:
    return RuleForm(
        statuses,
        topics,
        tags,
        tags_typed,
        joined_after,
        joined_before,
        sources,
        engaged_in_last,
        not_engaged_in_last,
        never_opened,
    )


Fields = Annotated[RuleForm, Depends(rule_form)]


def _form_context(session: Session, **extra: Any) -> dict[str, Any]:
    tags = listing.tag_names(session)
    return {
        "statuses": [s.value for s in SubscriberStatus],
        "topic_choices": categories(session),
        "tag_choices": tags[:TAG_BOXES],
        "tags_typed_only": len(tags) > TAG_BOXES,
        "max_issues": MAX_ISSUES,
        **extra,
    }


def _shown(rule: Rule) -> dict[str, Any]:
    """A rule as the form shows it back."""
    data = rule.model_dump(mode="json")
    data["sources"] = ", ".join(rule.sources)
    return data


@router.get("", response_class=HTMLResponse)
def segments(request: Request) -> Response:
    with transaction() as session:
        rows = [audiences.summary(session, s) for s in audiences.all_segments(session)]
        context = _form_context(session, rows=rows, form=_shown(Rule()), name="", error=None)
    return render(request, "web/admin/segments.html", context)


@router.post("", response_class=HTMLResponse)
def create(
    request: Request,
    me: Admin,
    fields: Fields,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        with transaction() as session:
            raw = fields.raw()
            segment = audiences.create(session, name, raw, by=me.email)
            message = (
                f"Segment “{segment.name}” saved: {audiences.count(session, segment):,} "
                "subscribers now."
            )
            segment_id = segment.id
    except Refused as exc:
        with transaction() as session:
            rows = [audiences.summary(session, s) for s in audiences.all_segments(session)]
            form = fields.echo()
            context = _form_context(session, rows=rows, form=form, name=name, error=str(exc))
        return render(request, "web/admin/segments.html", context, status_code=400)
    flash(request, message)
    return redirect(paths.admin_segment(segment_id))


def _segment_or_404(session: Session, segment_id: int) -> Any:
    from fastapi import HTTPException

    try:
        return audiences.get(session, segment_id)
    except audiences.SegmentError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


@router.get("/{segment_id}", response_class=HTMLResponse)
def segment_page(request: Request, segment_id: int) -> Response:
    with transaction() as session:
        segment = _segment_or_404(session, segment_id)
        rule = audiences.rule_of(segment)
        context = _form_context(
            session,
            segment=audiences.summary(session, segment),
            form=_shown(rule),
            name=segment.name,
            error=None,
            waiting=[
                (i.id, i.week, i.status.value) for i in audiences.issues_for(session, segment)
            ],
        )
    return render(request, "web/admin/segment.html", context)


@router.post("/{segment_id}", response_class=HTMLResponse)
def change(
    request: Request,
    segment_id: int,
    fields: Fields,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        with transaction() as session:
            _segment_or_404(session, segment_id)
            raw = fields.raw()
            segment = audiences.change(session, segment_id, name=name, raw_rule=raw)
            message = (
                f"Segment “{segment.name}” saved: {audiences.count(session, segment):,} "
                "subscribers now."
            )
    except Refused as exc:
        with transaction() as session:
            segment = _segment_or_404(session, segment_id)
            form = fields.echo()
            context = _form_context(
                session,
                segment=audiences.summary(session, segment),
                form=form,
                name=name,
                error=str(exc),
                waiting=[
                    (i.id, i.week, i.status.value) for i in audiences.issues_for(session, segment)
                ],
            )
        return render(request, "web/admin/segment.html", context, status_code=400)
    flash(request, message)
    return redirect(paths.admin_segment(segment_id))


@router.post("/{segment_id}/delete")
def delete(request: Request, segment_id: int) -> Response:
    try:
        with transaction() as session:
            _segment_or_404(session, segment_id)
            name = audiences.delete(session, segment_id)
    except Refused as exc:
        flash(request, str(exc), "error")
        return redirect(paths.admin_segment(segment_id))
    flash(request, f"Segment “{name}” deleted (nobody was changed: a segment is only a filter).")
    return redirect(paths.ADMIN_SEGMENTS)
