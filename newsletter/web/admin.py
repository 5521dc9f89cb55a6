"""Admin pages: the subscriber list (search, filter, keyset pages), add, CSV export (the import
is in admin_import.py), unsubscribe, erase, the suppression list, and staff users with their
roles.

Every route here is admin-only (`require_admin`: an editor gets 403). The subscriber work goes
through `subscribers.service`, `subscribers.importer` and `subscribers.listing`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from newsletter import paths
from newsletter.db import transaction
from newsletter.people import erasure
from newsletter.people import history as people_history
from newsletter.web import csrf
from newsletter.web.auth import Admin, require_admin
from newsletter.web.pages import CONFIRMED, confirm_page, flash, redirect, render
from newsletter.web.textinput import unstorable
from subscribers import export as list_export
from subscribers import listing

router = APIRouter(
    prefix="/admin",
    dependencies=[Depends(require_admin), Depends(csrf.require_csrf)],
    include_in_schema=False,
)

PAGE_SIZE = 50


def _status(raw: str | None) -> Any:
    from subscribers.models import SubscriberStatus

    if not raw:
        return None
    try:
        return SubscriberStatus(raw)
    except ValueError:
        raise HTTPException(status_code=400, detail=f"Unknown status {raw!r}.") from None


# Counting every match of a common search term on a million rows costs more than the page:
# beyond this the page says "more than 10,000".
COUNT_CAP = 10_000
# A bulk action runs in the request, in one transaction; past this the admin narrows the filter
# (or repeats: a filter such as "status: active" shrinks as each run unsubscribes).
BULK_LIMIT = 10_000
MAX_START = 10**9


def _clean(value: str, field: str, limit: int) -> str:
    """A text input as the database can store it, or a 400 that names the field."""
    if len(value) > limit:
        raise HTTPException(status_code=400, detail=f"{field} is longer than {limit} characters.")
    if unstorable(value) is not None:
        raise HTTPException(
            status_code=400, detail=f"{field} contains a NUL or an unpaired surrogate character."
        )
    return value


def _segment(session: Any, raw: str) -> tuple[Any, Any]:
    """The segment a list, a bulk action or an export is limited to (`?segment=ID`), and its
    members' SELECT; (None, None) for the whole list."""
    from newsletter.audience import service as audiences

    wanted = _clean(raw, "segment", 20).strip()
    if not wanted:
        return None, None
    if not (wanted.isascii() and wanted.isdigit() and len(wanted) <= 18):
        raise HTTPException(status_code=400, detail=f"{wanted!r} is not a segment id.")
    try:
        segment = audiences.get(session, int(wanted))
    except audiences.SegmentError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return segment, audiences.members(session, segment)


def _sort(raw: str) -> Any:
    from subscribers.listing import SortKey

    try:
        return SortKey(raw or "joined")
    except ValueError:
        choices = ", ".join(k.value for k in SortKey)
        raise HTTPException(
            status_code=400, detail=f"Unknown sort {raw!r} (one of {choices})."
        ) from None


def _descending(sort: Any, raw: str) -> bool:
    if raw not in ("", "asc", "desc"):
        raise HTTPException(status_code=400, detail=f"Unknown order {raw!r} (asc or desc).")
    # Newest first by default; names, addresses and statuses A to Z.
    return raw == "desc" if raw else sort.value == "joined"


def _cursor(sort: Any, after: str, after_id: int) -> Any:
    from subscribers.listing import Cursor, SortKey

    after = _clean(after, "after", 1000)
    if after_id <= 0:
        return None
    if sort is SortKey.JOINED:
        return Cursor(None, after_id)
    if sort is SortKey.STATUS:
        return Cursor(_status(after), after_id)
    return Cursor(after, after_id)


@router.get("/subscribers", response_class=HTMLResponse)
def subscribers_list(
    request: Request,
    q: str = "",
    status: str = "",
    sort: str = "",
    order: str = "",
    after: str = "",
    after_id: Annotated[int, Query(ge=0)] = 0,
    before: Annotated[int, Query(ge=0)] = 0,
    start: Annotated[int, Query(ge=0, le=MAX_START)] = 0,
    segment: str = "",
) -> Response:
    from newsletter.audience import service as audiences
    from subscribers import service
    from subscribers.models import SubscriberStatus

    wanted = _status(_clean(status, "status", 32))
    query = _clean(q, "The search", 200).strip()
    key = _sort(sort)
    descending = _descending(key, order)
    cursor = _cursor(key, after, after_id or before)
    if cursor is None:
        start = 0
    with transaction() as session:
        chosen, within = _segment(session, segment)
        segments = [(g.id, g.name) for g in audiences.all_segments(session)]
        rows = listing.subscribers_page(
            session,
            status=wanted,
            search=query or None,
            sort=key,
            descending=descending,
            after=cursor,
            limit=PAGE_SIZE + 1,
            within=within,
        )
        # Without a search the status counts (one GROUP BY on the status index) are exact;
        # a search counts its matches up to COUNT_CAP.
        counts = listing.status_counts(session)
        # Someone on the suppression list is never mailed, whatever their status says (an
        # admin suppressed the address, or it bounced as another subscriber's).
        suppressed = service.suppressed_among(session, [r.email_hash for r in rows])
        if query or within is not None:
            total = listing.count_matching(
                session, status=wanted, search=query or None, cap=COUNT_CAP + 1, within=within
            )
        else:
            total = counts.get(wanted.value, 0) if wanted else sum(counts.values())
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    last = rows[-1] if more and rows else None
    segment_id = str(chosen.id) if chosen else ""
    filters = {
        "q": query,
        "status": status,
        "segment": segment_id,
        "sort": key.value,
        "order": order,
    }
    next_page = None
    if last is not None:
        value = "" if key.value == "joined" else str(getattr(last, key.value))
        next_page = {**filters, "after": value, "after_id": last.id, "start": start + len(rows)}
    context = {
        "rows": rows,
        "suppressed": suppressed,
        "q": query,
        "status": status,
        "statuses": [s.value for s in SubscriberStatus],
        "counts": counts,
        "total": total,
        "capped": (bool(query) or chosen is not None) and total > COUNT_CAP,
        "segment": chosen,
        "segment_id": segment_id,
        "segments": segments,
        "segment_rule": audiences.rule_of(chosen).describe() if chosen else "",
        "first": start + 1 if rows else 0,
        "last_shown": start + len(rows),
        "sort": key.value,
        "descending": descending,
        "filters": filters,
        "next_page": next_page,
        "paged": cursor is not None,
        "bulk_limit": BULK_LIMIT,
    }
    return render(request, "web/admin/subscribers.html", context)


def _selection(raw: list[str] | None) -> list[int] | None:
    if not raw:
        return None
    ids = []
    for value in raw[: BULK_LIMIT + 1]:
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise HTTPException(status_code=400, detail=f"{value[:40]!r} is not a subscriber id.")
        ids.append(int(value))
    if len(raw) > BULK_LIMIT:
        raise HTTPException(
            status_code=400, detail=f"At most {BULK_LIMIT:,} subscribers can be ticked at once."
        )
    return sorted(set(ids))


@router.post("/subscribers/bulk", response_class=HTMLResponse)
def bulk(
    request: Request,
    action: Annotated[str, Form(max_length=32)],
    scope: Annotated[str, Form(max_length=16)] = "selected",
    q: Annotated[str, Form()] = "",
    status: Annotated[str, Form(max_length=32)] = "",
    segment: Annotated[str, Form(max_length=20)] = "",
    id: Annotated[list[str] | None, Form()] = None,
    confirmed: Annotated[int | None, Form(ge=0, le=BULK_LIMIT)] = None,
) -> Response:
    """Two steps: the first POST shows how many subscribers the action would touch and asks;
    the second (with `confirmed`, the count the admin saw) runs it, in one transaction."""
    from subscribers import service

    try:
        what = None if action == "export" else service.BulkAction(action)
    except ValueError:
        raise HTTPException(status_code=400, detail=f"Unknown bulk action {action!r}.") from None
    if scope not in ("selected", "filter"):
        raise HTTPException(status_code=400, detail="scope must be selected or filter.")
    query = _clean(q, "The search", 200).strip()
    wanted = _status(_clean(status, "status", 32))
    chosen = _selection(id) if scope == "selected" else None
    if scope == "selected" and chosen is None:
        flash(request, "Tick at least one subscriber, or choose “everyone matching”.", "error")
        return redirect(paths.ADMIN_SUBSCRIBERS)
    # An export only reads, so it has no size limit and streams whatever matches when it runs.
    limit = None if what is None else BULK_LIMIT + 1
    with transaction() as session:
        group, within = _segment(session, segment)
        filters: dict[str, Any] = {
            "search": query or None,
            "status": wanted,
            "ids": chosen,
            "within": within,
        }
        ids = listing.matching_ids(session, limit=limit or 10, **filters)
        count = listing.count_matching(session, **filters) if what is None else len(ids)
        too_many = what is not None and count > BULK_LIMIT
        changed = confirmed is not None and what is not None and count != confirmed
        if confirmed is None or too_many or changed:
            sample = [s.email for s in listing.list_subscribers(session, ids=ids[:10])]
            context = {
                "action": action,
                "scope": scope,
                "q": query,
                "status": status,
                "segment": group,
                "segment_id": str(group.id) if group else "",
                "ids": chosen or [],
                "count": count,
                "too_many": too_many,
                "bulk_limit": BULK_LIMIT,
                "sample": sample,
                "changed_from": confirmed if changed else None,
            }
            return render(
                request,
                "web/admin/bulk_confirm.html",
                context,
                status_code=409 if changed else 200,
            )
        if what is None:
            return _csv_download("subscribers-selection.csv", **filters)
        back = paths.ADMIN_SUBSCRIBERS + (f"?segment={group.id}" if group else "")
        done = erasure.apply_bulk(session, what, ids)
    past = {"unsubscribe": "unsubscribed", "pause": "paused", "resume": "resumed"}
    flash(request, f"{done:,} of {len(ids):,} subscribers {past.get(action, 'erased')}.")
    return redirect(back)


def _csv_download(
    name: str,
    *,
    status: Any = None,
    search: str | None = None,
    ids: list[int] | None = None,
    within: Any = None,
) -> StreamingResponse:
    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        with transaction() as session:
            for count, row in enumerate(
                list_export.csv_rows(session, status, search=search, ids=ids, within=within)
            ):
                writer.writerow(row)
                if count % 1000 == 999:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/subscribers")
def add_subscriber(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    from subscribers import service
    from subscribers.addresses import InvalidAddress

    try:
        with transaction() as session:
            subscriber, outcome = service.add_by_admin(session, email, name, source="web")
            address, what = subscriber.email, outcome.value
        flash(request, f"{address}: {what}.")
    except (InvalidAddress, service.SubscriberError) as exc:
        flash(request, str(exc), "error")
    return redirect(paths.ADMIN_SUBSCRIBERS)


@router.get("/subscribers/export.csv")
def export(status: str = "", segment: str = "") -> StreamingResponse:
    wanted = _status(_clean(status, "status", 32))
    with transaction() as session:
        group, within = _segment(session, segment)
    name = f"segment-{group.id}" if group else "subscribers"
    return _csv_download(f"{name}-{status or 'all'}.csv", status=wanted, within=within)


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
def subscriber_page(request: Request, subscriber_id: int) -> Response:
    from subscribers import service

    with transaction() as session:
        subscriber = service.get(session, subscriber_id)
        if subscriber is None:
            raise HTTPException(status_code=404, detail="No such subscriber (erased?).")
        data = service.to_json(subscriber) | {"topics": service.topics_of(session, subscriber_id)}
        history = people_history.history(session, subscriber_id)
        suppressed = service.suppression_for(session, subscriber.email_hash)
    context = {
        "s": data,
        "history": history,
        "suppressed": suppressed,
        "name_chars": service.NAME_CHARS,
        "history_rows": people_history.HISTORY_ROWS,
    }
    return render(request, "web/admin/subscriber.html", context)


@router.post("/subscribers/{subscriber_id}/name")
def rename(
    request: Request, subscriber_id: int, name: Annotated[str, Form(max_length=1000)] = ""
) -> Response:
    from subscribers import service

    cleaned = _clean(name, "The name", 1000)
    try:
        with transaction() as session:
            stored = service.rename(session, subscriber_id, cleaned)
        flash(request, f"Name saved: {stored}." if stored else "Name cleared.")
    except service.SubscriberError as exc:
        flash(request, str(exc), "error")
    return redirect(paths.admin_subscriber(subscriber_id))


@router.post("/subscribers/{subscriber_id}/unsubscribe")
def unsubscribe(request: Request, subscriber_id: int) -> Response:
    from subscribers import service

    with transaction() as session:
        changed = service.unsubscribe(session, subscriber_id, reason="admin")
    flash(request, "Unsubscribed and suppressed." if changed else "Already not receiving mail.")
    return redirect(paths.admin_subscriber(subscriber_id))


@router.get("/subscribers/{subscriber_id}/erase", response_class=HTMLResponse)
def erase_page(request: Request, subscriber_id: int) -> Response:
    from subscribers import service

    with transaction() as session:
        subscriber = service.get(session, subscriber_id)
        if subscriber is None:
            raise HTTPException(status_code=404, detail="No such subscriber (already erased?).")
        email = subscriber.email
    return confirm_page(
        request,
        title=f"Erase {email}?",
        question="This removes the person for good; it cannot be undone.",
        consequences=[
            "Their name, address, consent record and activity are deleted.",
            "Their address stays on the suppression list as a one-way hash, so no import or "
            "sign-up brings it back by mistake.",
            "Their votes stay in the totals, anonymously.",
        ],
        action=paths.admin_subscriber(subscriber_id) + "/erase",
        button="Yes, erase all personal data",
        back=paths.admin_subscriber(subscriber_id),
    )


@router.post("/subscribers/{subscriber_id}/erase")
def erase(
    request: Request, subscriber_id: int, confirmed: Annotated[str, Form(max_length=10)] = ""
) -> Response:

    if confirmed != CONFIRMED:
        return redirect(paths.admin_subscriber(subscriber_id) + "/erase")

    with transaction() as session:
        erased = erasure.erase(session, subscriber_id)
    if not erased:
        raise HTTPException(status_code=404, detail="No such subscriber (already erased?).")
    flash(request, "Erased: personal data removed; the address stays suppressed as a hash.")
    return redirect(paths.ADMIN_SUBSCRIBERS)


@router.get("/suppressions", response_class=HTMLResponse)
def suppressions(
    request: Request, before: Annotated[int, Query(ge=0)] = 0, address: str = ""
) -> Response:
    from subscribers import service
    from subscribers.addresses import InvalidAddress

    looked_up = _clean(address, "The address", 320).strip()
    lookup: dict[str, Any] | None = None
    with transaction() as session:
        if looked_up:
            try:
                email_hash, found = service.suppression_of(session, looked_up)
                lookup = {"address": looked_up, "hash": email_hash, "row": found, "error": None}
            except InvalidAddress as exc:
                lookup = {"address": looked_up, "error": str(exc)}
        rows = listing.suppressions_page(session, before_id=before, limit=PAGE_SIZE + 1)
        total = listing.suppression_count(session)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    context = {
        "rows": rows,
        "total": total,
        "next_before": rows[-1].id if more and rows else None,
        "paged": before > 0,
        "lookup": lookup,
    }
    return render(
        request,
        "web/admin/suppressions.html",
        context,
        status_code=400 if lookup and lookup["error"] else 200,
    )


@router.post("/suppressions")
def add_suppression(
    request: Request,
    address: Annotated[str, Form(max_length=320)],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    from subscribers import service
    from subscribers.addresses import InvalidAddress

    raw = _clean(address, "The address", 320).strip()
    try:
        with transaction() as session:
            added = service.suppress_by_hand(session, raw, _clean(note, "note", 500))
        flash(
            request,
            f"{raw} is now suppressed: it is never mailed, and no import brings it back."
            if added
            else f"{raw} was already suppressed; its first reason stays.",
        )
    except InvalidAddress as exc:
        flash(request, str(exc), "error")
        return redirect(paths.ADMIN_SUPPRESSIONS)
    return redirect(f"{paths.ADMIN_SUPPRESSIONS}?address={quote(raw)}")


# --- staff users -------------------------------------------------------------------------------


@router.get("/users", response_class=HTMLResponse)
def users(request: Request) -> Response:
    from newsletter.accounts.models import Role
    from newsletter.accounts.service import list_all

    with transaction() as session:
        rows = [
            {"id": u.id, "email": u.email, "role": u.role.value, "token": bool(u.api_token_hash)}
            for u in list_all(session)
        ]
    return render(request, "web/admin/users.html", {"rows": rows, "roles": [r.value for r in Role]})


@router.post("/users")
def add_user(
    request: Request,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    # The least privilege unless an admin asks for more.
    role: Annotated[str, Form(max_length=20)] = "editor",
) -> Response:
    from newsletter.accounts.service import AccountError, create_user, parse_role

    try:
        with transaction() as session:
            user = create_user(session, email, password, parse_role(role))
            flash(request, f"{user.email} can now sign in as {user.role.value}.")
    except AccountError as exc:
        flash(request, str(exc), "error")
    return redirect(paths.ADMIN_USERS)


@router.post("/users/{user_id}/role")
def change_role(
    request: Request, user_id: int, role: Annotated[str, Form()], me: Admin
) -> Response:
    from newsletter.accounts.service import AccountError, get, parse_role, set_role

    try:
        with transaction() as session:
            user = get(session, user_id)
            if user is None:
                raise HTTPException(status_code=404, detail="No such user.")
            set_role(session, user, parse_role(role))
            flash(request, f"{user.email} is now {user.role.value}.")
    except AccountError as exc:
        flash(request, str(exc), "error")
    return redirect(paths.ADMIN_USERS)


@router.get("/users/{user_id}/delete", response_class=HTMLResponse)
def delete_user_page(request: Request, user_id: int, me: Admin) -> Response:
    from newsletter.accounts.service import get

    with transaction() as session:
        user = get(session, user_id)
        if user is None:
            raise HTTPException(status_code=404, detail="No such user.")
        email, role = user.email, user.role.value
    if user_id == me.id:
        flash(request, "You cannot remove your own account while signed in with it.", "error")
        return redirect(paths.ADMIN_USERS)
    return confirm_page(
        request,
        title=f"Remove {email}?",
        question=f"{email} ({role}) will no longer be able to sign in.",
        consequences=["Their API token stops working.", "You can add them again later."],
        action=f"{paths.ADMIN_USERS}/{user_id}/delete",
        button=f"Yes, remove {email}",
        back=paths.ADMIN_USERS,
    )


@router.post("/users/{user_id}/delete")
def delete_user(
    request: Request, user_id: int, me: Admin, confirmed: Annotated[str, Form(max_length=10)] = ""
) -> Response:
    from newsletter.accounts.service import AccountError, get, remove_user

    if confirmed != CONFIRMED:
        return redirect(f"{paths.ADMIN_USERS}/{user_id}/delete")
    if user_id == me.id:
        flash(request, "You cannot remove your own account while signed in with it.", "error")
        return redirect(paths.ADMIN_USERS)
    try:
        with transaction() as session:
            user = get(session, user_id)
            if user is None:
                raise HTTPException(status_code=404, detail="No such user.")
            email = user.email
            remove_user(session, user)
        flash(request, f"{email} removed.")
    except AccountError as exc:
        flash(request, str(exc), "error")
    return redirect(paths.ADMIN_USERS)
