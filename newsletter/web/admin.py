"""Admin pages: the subscriber list (search, filter, keyset pages), add, CSV import and export,
unsubscribe, erase, the suppression list, and staff users with their roles.

Every route here is admin-only (`require_admin`: an editor gets 403). The subscriber work goes
through `subscribers.service`, `subscribers.importer` and `subscribers.repository`.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from newsletter.db import transaction
from newsletter.web import csrf
from newsletter.web.auth import Admin, require_admin
from newsletter.web.pages import CONFIRMED, confirm_page, flash, redirect, render
from subscribers import export as list_export
from subscribers import repository as subscribers_repository

router = APIRouter(
    prefix="/admin",
    dependencies=[Depends(require_admin), Depends(csrf.require_csrf)],
    include_in_schema=False,
)

PAGE_SIZE = 50
MAX_UPLOAD_BYTES = 200 * 1024 * 1024


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


@router.get("/subscribers/import", response_class=HTMLResponse)
def import_form(request: Request) -> Response:
    return render(request, "web/admin/import.html", {"report": None, "filename": None})


@router.post("/subscribers/import", response_class=HTMLResponse)
def import_upload(
    request: Request,
    file: Annotated[UploadFile, File()],
    require_confirmation: Annotated[bool, Form()] = False,
) -> Response:
    from subscribers import importer
    from subscribers.emails import send_confirmation

    filename = Path(file.filename or "upload.csv").name
    with tempfile.TemporaryDirectory(prefix="nl-import-") as folder:
        # The importer reads a file by name (its report counts lines and bytes); the upload is
        # copied to a private temporary folder under the name the admin chose.
        path = Path(folder) / (filename if filename.endswith(".csv") else f"{filename}.csv")
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, length=1024 * 1024)
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise HTTPException(status_code=413, detail="The file is larger than 200 MB.")
        try:
            report = importer.import_csv(
                path,
                require_confirmation=require_confirmation,
                send_confirmation=send_confirmation if require_confirmation else None,
            )
        except importer.ImportRefused as exc:
            return render(
                request,
                "web/admin/import.html",
                {"report": None, "filename": filename, "refused": str(exc)},
                status_code=400,
            )
    return render(
        request, "web/admin/import.html", {"report": report.to_json(), "filename": filename}
    )


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


@router.get("/subscribers/{subscriber_id}/erase", response_class=HTMLResponse)
def erase_page(request: Request, subscriber_id: int) -> Response:
    from subscribers import repository

    with transaction() as session:
        subscriber = repository.get(session, subscriber_id)
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
        action=f"/admin/subscribers/{subscriber_id}/erase",
        button="Yes, erase all personal data",
        back=f"/admin/subscribers/{subscriber_id}",
    )


@router.post("/subscribers/{subscriber_id}/erase")
def erase(
    request: Request, subscriber_id: int, confirmed: Annotated[str, Form(max_length=10)] = ""
) -> Response:
    from subscribers import service

    if confirmed != CONFIRMED:
        return redirect(f"/admin/subscribers/{subscriber_id}/erase")

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


@router.get("/users/{user_id}/delete", response_class=HTMLResponse)
def delete_user_page(request: Request, user_id: int, me: Admin) -> Response:
    from newsletter.accounts.repository import get

    with transaction() as session:
        user = get(session, user_id)
        if user is None:
            raise HTTPException(status_code=404, detail="No such user.")
        email, role = user.email, user.role.value
    if user_id == me.id:
        flash(request, "You cannot remove your own account while signed in with it.", "error")
        return redirect("/admin/users")
    return confirm_page(
        request,
        title=f"Remove {email}?",
        question=f"{email} ({role}) will no longer be able to sign in.",
        consequences=["Their API token stops working.", "You can add them again later."],
        action=f"/admin/users/{user_id}/delete",
        button=f"Yes, remove {email}",
        back="/admin/users",
    )


@router.post("/users/{user_id}/delete")
def delete_user(
    request: Request, user_id: int, me: Admin, confirmed: Annotated[str, Form(max_length=10)] = ""
) -> Response:
    from newsletter.accounts.repository import get
    from newsletter.accounts.service import AccountError, remove_user

    if confirmed != CONFIRMED:
        return redirect(f"/admin/users/{user_id}/delete")
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
