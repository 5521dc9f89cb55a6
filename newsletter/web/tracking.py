"""Public tracking endpoints (votes) and SendGrid's Event Webhook.

The open pixel and the click redirect are answered before routing, by `tracking_middleware.py`; this
module keeps what they share with the vote page (the pixel, the no-cache headers, the 404 page).
Every per-recipient URL carries the signed delivery token: a forged or altered token gets a
plain 404 and records nothing. Handlers are plain `def`s (run in the thread pool) because the
database work is synchronous; the webhook reads its raw body asynchronously first, since the
signature covers the exact bytes.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
)

from newsletter import paths
from newsletter.db import transaction
from newsletter.numbers import ascii_int
from newsletter.security.delivery_tokens import is_sample_token, read_delivery_token
from newsletter.settings import get_settings
from newsletter.templating import web_environment
from newsletter.tracking import service, webhook
from newsletter.tracking.ingest import IngestReport, ingest_sendgrid
from newsletter.tracking.service import VoteOutcome, VoteResult

log = logging.getLogger(__name__)
router = APIRouter(tags=["tracking"])

# The smallest transparent 1x1 GIF (43 bytes).
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
# Every hit must reach us: no browser, proxy or CDN may answer from a cache.
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}


def _client(request: Request) -> tuple[str | None, str | None]:
    return request.headers.get("user-agent"), request.client.host if request.client else None


def not_found(what: str) -> HTMLResponse:
    page = web_environment().get_template("web/tracking/not_found.html").render(what=what)
    return HTMLResponse(page, status_code=404, headers=NO_CACHE)


@router.get(paths.VOTE_PATTERN, include_in_schema=False)
def vote(token: str, slug: str, tool: str, request: Request) -> Response:
    return _vote(token, slug, tool, request, confirmed=False)


@router.post(paths.VOTE_PATTERN, include_in_schema=False)
def confirm_vote(token: str, slug: str, tool: str, request: Request) -> Response:
    """The "Count my vote" button shown when the link looked like it was opened by a scanner."""
    return _vote(token, slug, tool, request, confirmed=True)


def _vote(token: str, slug: str, tool: str, request: Request, *, confirmed: bool) -> Response:
    if is_sample_token(token):
        from newsletter.web.pages import sample_link_page

        return sample_link_page(request, token, "vote")
    link = read_delivery_token(token)
    if link is None or tool not in ("0", "1"):
        return not_found("This vote link is not valid.")
    user_agent, client_ip = _client(request)
    with transaction() as session:
        result = service.record_vote(
            session,
            link,
            slug,
            int(tool),
            user_agent=user_agent,
            client_ip=client_ip,
            confirmed=confirmed,
        )
    if result.outcome is VoteOutcome.NOT_FOUND:
        return not_found("This vote link is not valid.")
    return HTMLResponse(_vote_page(result, request.url.path), headers=NO_CACHE)


def _vote_page(result: VoteResult, action: str) -> str:
    assert result.matchup is not None and result.tool is not None
    names = [tool.name for tool in result.matchup.tools]
    pct0 = result.pct_tool0
    return (
        web_environment()
        .get_template("web/tracking/vote.html")
        .render(
            matchup_title=result.matchup.title,
            names=names,
            chosen=names[result.tool],
            counted=result.outcome is VoteOutcome.COUNTED,
            split=None if pct0 is None else [pct0, 100 - pct0],
            votes=result.votes,
            confirm_action=action,
            panel=[tool.panel_ship_pct for tool in result.matchup.tools],
            record=result.record,
        )
    )


@router.post("/webhooks/sendgrid", include_in_schema=False)
async def sendgrid_events(request: Request) -> Response:
    settings = get_settings()
    if not settings.sendgrid_webhook_public_key:
        # 5xx, so SendGrid keeps the events and retries once the key is configured.
        return PlainTextResponse("SENDGRID_WEBHOOK_PUBLIC_KEY is not set", status_code=503)
    try:
        public_key = webhook.load_public_key(settings.sendgrid_webhook_public_key)
    except webhook.WebhookConfigError as exc:
        log.error("sendgrid webhook: %s", exc)
        return PlainTextResponse(str(exc), status_code=503)
    declared = ascii_int(request.headers.get("content-length", ""))
    if declared is not None and declared > webhook.MAX_BODY_BYTES:
        return PlainTextResponse("body too large", status_code=413)
    body = await request.body()
    try:
        webhook.verify(
            public_key,
            signature=request.headers.get(webhook.SIGNATURE_HEADER),
            timestamp=request.headers.get(webhook.TIMESTAMP_HEADER),
            body=body,
            max_age_seconds=settings.sendgrid_webhook_max_age_seconds,
        )
        events = webhook.parse_events(body)
    except (webhook.SignatureError, webhook.PayloadError) as exc:
        log.warning("sendgrid webhook refused: %s", exc)
        return PlainTextResponse(f"refused: {exc}", status_code=400)
    try:
        report = await run_in_threadpool(_ingest, events)
    except Exception:
        # A failure here is ours (database down, a bug): 5xx makes SendGrid retry the batch, and
        # idempotency on sg_event_id makes the retry safe.
        log.exception("sendgrid webhook: processing failed")
        return PlainTextResponse("processing failed; retry later", status_code=500)
    return JSONResponse(
        {
            "received": report.received,
            "stored": report.stored,
            "duplicates": report.duplicates,
            "unmatched": report.unmatched,
        }
    )


def _ingest(events: list[dict[str, object]]) -> IngestReport:
    with transaction() as session:
        return ingest_sendgrid(session, events)
