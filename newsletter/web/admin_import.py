"""The admin's CSV import, in two steps: upload, then see the detected format and the column
mapping (and change them), then import (or check first with a dry run) and read the report.

Between the two steps the upload waits in a private folder under a random name; the admin's
own file name is kept beside it only for display and the subscribers' `source`, so a name of
any length or characters cannot reach the file system. Uploads left waiting are removed after
a day.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from newsletter.web import csrf
from newsletter.web.auth import require_admin
from newsletter.web.pages import render

router = APIRouter(
    prefix="/admin",
    dependencies=[Depends(require_admin), Depends(csrf.require_csrf)],
    include_in_schema=False,
)

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_SHOWN_NAME = 255
STALE_AFTER_SECONDS = 24 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}")
_TEMPLATE = "web/admin/import.html"


def uploads_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "newsletter-imports"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _sweep(folder: Path) -> None:
    cutoff = time.time() - STALE_AFTER_SECONDS
    for entry in folder.iterdir():
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue  # removed meanwhile by another worker


def _upload(token: str) -> tuple[Path, str]:
    if not _TOKEN.fullmatch(token):
        raise HTTPException(status_code=404, detail="No such upload.")
    folder = uploads_dir() / token
    data = folder / "upload.csv"
    if not data.is_file():
        raise HTTPException(
            status_code=404, detail="This upload is gone (imported, or older than a day)."
        )
    return data, (folder / "name.txt").read_text(encoding="utf-8")


def _shown_name(raw: str | None) -> str:
    """The admin's file name as text to show: no folders, no control characters, bounded."""
    from subscribers.service import clean_name

    # A lone surrogate cannot be stored or shown: it becomes "?".
    name = clean_name(Path(raw or "upload.csv").name.encode("utf-8", "replace").decode("utf-8"))
    if len(name) > MAX_SHOWN_NAME:
        name = name[: MAX_SHOWN_NAME - 1] + "…"
    return name or "upload.csv"


def _form_context(token: str, filename: str, preview: Any, **extra: Any) -> dict[str, Any]:
    from subscribers.formats import FIELDS, FORMATS, MAPPABLE

    mapping = preview.mapping
    headers = list(mapping.headers)
    chosen = {field: headers[i] for field, i in mapping.columns.items() if i < len(headers)}
    return {
        "step": "mapping",
        "token": token,
        "filename": filename,
        "format": mapping.fmt.key,
        "format_label": mapping.fmt.label,
        "formats": [(f.key, f.label) for f in FORMATS.values()],
        "headers": headers,
        "mappable": MAPPABLE,
        "chosen": chosen,
        # Columns the format reads besides the mappable ones (flags, times), shown as facts.
        "also_read": [(f, chosen[f]) for f in FIELDS if f in chosen and f not in MAPPABLE],
        "file_state": mapping.file_state.why if mapping.file_state else None,
        "sample": preview.sample,
        **extra,
    }


@router.get("/subscribers/import", response_class=HTMLResponse)
def import_form(request: Request) -> Response:
    return render(request, _TEMPLATE, {"step": "upload"})


@router.post("/subscribers/import", response_class=HTMLResponse)
def import_upload(
    request: Request,
    file: Annotated[UploadFile, File()],
    require_confirmation: Annotated[bool, Form()] = False,
) -> Response:
    """Step one: keep the file, show what it was recognised as."""
    from subscribers import importer

    filename = _shown_name(file.filename)
    folder = uploads_dir()
    _sweep(folder)
    token = secrets.token_urlsafe(24)
    own = folder / token
    own.mkdir(mode=0o700)
    data = own / "upload.csv"
    with data.open("wb") as out:
        shutil.copyfileobj(file.file, out, length=1024 * 1024)
    if data.stat().st_size > MAX_UPLOAD_BYTES:
        shutil.rmtree(own, ignore_errors=True)
        raise HTTPException(status_code=413, detail="The file is larger than 200 MB.")
    (own / "name.txt").write_text(filename, encoding="utf-8")
    try:
        preview = importer.preview(data)
    except importer.ImportRefused as exc:
        shutil.rmtree(own, ignore_errors=True)
        return render(
            request,
            _TEMPLATE,
            {"step": "upload", "filename": filename, "refused": str(exc)},
            status_code=400,
        )
    context = _form_context(token, filename, preview, require_confirmation=require_confirmation)
    return render(request, _TEMPLATE, context)


@router.post("/subscribers/import/{token}", response_class=HTMLResponse)
def import_run(
    request: Request,
    token: str,
    format_: Annotated[str, Form(alias="format", max_length=64)] = "",
    action: Annotated[str, Form(max_length=16)] = "",
    require_confirmation: Annotated[str, Form(max_length=8)] = "",
    map_email: Annotated[str, Form(max_length=2000)] = "",
    map_name: Annotated[str, Form(max_length=2000)] = "",
    map_first_name: Annotated[str, Form(max_length=2000)] = "",
    map_last_name: Annotated[str, Form(max_length=2000)] = "",
    map_status: Annotated[str, Form(max_length=2000)] = "",
    map_tags: Annotated[str, Form(max_length=2000)] = "",
    map_signup_at: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Step two: with the format and mapping the admin chose, look again, check, or import.
    (A plain function: FastAPI runs it in a worker thread, so a long import does not hold up
    the server's other requests.)"""
    from newsletter.db import transaction
    from newsletter.people.topics import topics_from_import
    from subscribers import importer
    from subscribers.emails import send_confirmation

    data, filename = _upload(token)
    chosen = {
        "email": map_email,
        "name": map_name,
        "first_name": map_first_name,
        "last_name": map_last_name,
        "status": map_status,
        "tags": map_tags,
        "signup_at": map_signup_at,
    }
    fmt = format_ or None
    wants_confirmation = require_confirmation == "true"
    # On "look again" the format decides the columns; otherwise the admin's selects do.
    overrides = None if action == "detect" else chosen
    try:
        preview = importer.preview(data, fmt, overrides)
    except importer.ImportRefused as exc:
        # The mapping chosen cannot work (no email column…): the page again, as detected.
        context = _form_context(
            token,
            filename,
            importer.preview(data),
            require_confirmation=wants_confirmation,
            refused=str(exc),
        )
        return render(request, _TEMPLATE, context, status_code=400)
    if action == "detect":
        context = _form_context(token, filename, preview, require_confirmation=wants_confirmation)
        return render(request, _TEMPLATE, context)
    dry_run = action == "check"
    report = importer.import_csv(
        data,
        require_confirmation=wants_confirmation,
        send_confirmation=send_confirmation if wants_confirmation and not dry_run else None,
        fmt=fmt,
        overrides=overrides,
        dry_run=dry_run,
        source_name=filename,
    )
    if dry_run:
        context = _form_context(
            token,
            filename,
            preview,
            require_confirmation=wants_confirmation,
            report=report.to_json(),
        )
        return render(request, _TEMPLATE, context)
    with transaction() as session:
        topics_from_import(session, report)
    shutil.rmtree(data.parent, ignore_errors=True)
    return render(
        request, _TEMPLATE, {"step": "done", "filename": filename, "report": report.to_json()}
    )
