"""The logo every email shows (NEWSLETTER_LOGO), served by the app so mail loads no image from
anyone else. Long-cached: a new logo is a new deployment, and mail clients cache images anyway.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

from newsletter.sender import LOGO_PATH, LOGO_TYPES, SenderConfigError, logo_file

router = APIRouter(tags=["brand"], include_in_schema=False)


@router.get("/favicon.ico")
def favicon() -> Response:
    """Browsers ask for it on every page; the logo stands in (no icon: an empty 204, not a
    404 in every console)."""
    try:
        return logo()
    except HTTPException:
        return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})


@router.get(LOGO_PATH)
def logo() -> FileResponse:
    try:
        path = logo_file()
    except SenderConfigError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from exc
    if path is None or not path.is_file():
        raise HTTPException(status_code=404, detail="This newsletter has no logo file.")
    return FileResponse(
        path,
        media_type=LOGO_TYPES[path.suffix.lower()],
        headers={"Cache-Control": "public, max-age=86400"},
    )
