"""Admin pages: the subscriber list (search, filter, keyset pages), add, CSV export (the import
is in admin_import.py), unsubscribe, erase, the suppression list, and staff users with their
roles.

Every route here is admin-only (`require_admin`: an editor gets 403). The subscriber work goes
through `subscribers.service`, `subscribers.importer` and `subscribers.repository`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from newsletter.db import transaction
from newsletter.web import csrf
from newsletter.web.auth import Admin, require_admin
from newsletter.web.pages import flash, redirect, render
from subscribers import export as list_export
from subscribers import repository as subscribers_repository

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


@router.get("/subscribers", response_class=HTMLResponse)
def subscribers_list(
    request: Request,
    q: str = "",
    status: str = "",
    before: int = 0,
) -> Response:
    from subscribers import repository
    from subscribers.models import SubscriberStatus

    wanted = _status(status)
    query = q.strip()[:200]
    with transaction() as session:
        rows = list(
            subscribers_repository.subscribers_page(
                session, status=wanted, search=query or None, before_id=before, limit=PAGE_SIZE + 1
            )
        )
        # Counting a million rows costs more than the page itself: only the plain first page
        # (where an admin looks at the list as a whole) shows the totals.
        overview = not (query or wanted or before)
        counts = repository.status_counts(session) if overview else None
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    context = {
        "rows": rows,
        "q": query,
        "status": status,
        "statuses": [s.value for s in SubscriberStatus],
        "counts": counts,
        "total": sum(counts.values()) if counts is not None else None,
        "next_before": rows[-1].id if more and rows else None,
        "paged": before > 0,
    }
    return render(request, "web/admin/subscribers.html", context)


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
    return redirect("/admin/subscribers")


@router.get("/subscribers/export.csv")
def export(status: str = "") -> StreamingResponse:
    wanted = _status(status)

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        with transaction() as session:
            for count, row in enumerate(list_export.csv_rows(session, wanted)):
                writer.writerow(row)
                if count % 1000 == 999:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    name = f"subscribers-{status or 'all'}.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
def subscriber_page(request: Request, subscriber_id: int) -> Response:
    from subscribers import repository, service

    with transaction() as session:
        subscriber = repository.get(session, subscriber_id)
        if subscriber is None:
            raise HTTPException(status_code=404, detail="No such subscriber (erased?).")
        data = service.to_json(subscriber)
    return render(request, "web/admin/subscriber.html", {"s": data})


@router.post("/subscribers/{subscriber_id}/unsubscribe")
def unsubscribe(request: Request, subscriber_id: int) -> Response:
    from subscribers import service

    with transaction() as session:
        changed = service.unsubscribe(session, subscriber_id, reason="admin")
    flash(request, "Unsubscribed and suppressed." if changed else "Already not receiving mail.")
    return redirect(f"/admin/subscribers/{subscriber_id}")


@router.post("/subscribers/{subscriber_id}/erase")
def erase(request: Request, subscriber_id: int) -> Response:
    from subscribers import service

    with transaction() as session:
        erased = service.erase(session, subscriber_id)
    if not erased:
        raise HTTPException(status_code=404, detail="No such subscriber (already erased?).")
    flash(request, "Erased: personal data removed; the address stays suppressed as a hash.")
    return redirect("/admin/subscribers")


@router.get("/suppressions", response_class=HTMLResponse)
def suppressions(request: Request, before: int = 0) -> Response:
    with transaction() as session:
        rows = subscribers_repository.suppressions_page(
            session, before_id=before, limit=PAGE_SIZE + 1
        )
        total = subscribers_repository.suppression_count(session)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    context = {
        "rows": rows,
        "total": total,
        "next_before": rows[-1].id if more and rows else None,
        "paged": before > 0,
    }
    return render(request, "web/admin/suppressions.html", context)


# --- staff users -------------------------------------------------------------------------------


@router.get("/users", response_class=HTMLResponse)
def users(request: Request) -> Response:
    from newsletter.accounts.models import Role
    from newsletter.accounts.repository import list_all

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
    role: Annotated[str, Form()],
    password: Annotated[str, Form(max_length=1024)],
) -> Response:
    from newsletter.accounts.service import AccountError, create_user, parse_role

    try:
        with transaction() as session:
            user = create_user(session, email, password, parse_role(role))
            flash(request, f"{user.email} can now sign in as {user.role.value}.")
    except AccountError as exc:
        flash(request, str(exc), "error")
    return redirect("/admin/users")


@router.post("/users/{user_id}/role")
def change_role(
    request: Request, user_id: int, role: Annotated[str, Form()], me: Admin
) -> Response:
    from newsletter.accounts.repository import get
    from newsletter.accounts.service import AccountError, parse_role, set_role

    try:
        with transaction() as session:
            user = get(session, user_id)
            if user is None:
                raise HTTPException(status_code=404, detail="No such user.")
            set_role(session, user, parse_role(role))
            flash(request, f"{user.email} is now {user.role.value}.")
    except AccountError as exc:
        flash(request, str(exc), "error")
    return redirect("/admin/users")


@router.post("/users/{user_id}/delete")
def delete_user(request: Request, user_id: int, me: Admin) -> Response:
    from newsletter.accounts.repository import get
    from newsletter.accounts.service import AccountError, remove_user

    if user_id == me.id:
        flash(request, "You cannot remove your own account while signed in with it.", "error")
        return redirect("/admin/users")
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
    return redirect("/admin/users")
