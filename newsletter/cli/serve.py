"""`newsletter serve`: the web app under uvicorn."""

from __future__ import annotations

import typer

from newsletter.cli.support import fail


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(
        1,
        "--workers",
        min=1,
        help="Processes serving the one socket (about one per core: pixel and click hits are "
        "CPU-bound). Login attempt limits are kept per process.",
    ),
) -> None:
    """Run the web app: editor, admin, public pages, tracking and webhooks."""
    import uvicorn

    from newsletter.security.keys import InsecureSecretKey, is_loopback, require_signing_key
    from newsletter.settings import DEV_SECRET, get_settings

    settings = get_settings()
    try:
        require_signing_key(settings)
    except InsecureSecretKey as exc:
        fail(str(exc))
    if settings.newsletter_secret_key == DEV_SECRET and not is_loopback(host):
        # Anyone who knows the published default key could forge sessions and signed links.
        fail(
            f"refusing to listen on {host} with the development NEWSLETTER_SECRET_KEY: "
            "set NEWSLETTER_SECRET_KEY to a long random value (or serve on 127.0.0.1)"
        )
    uvicorn.run(
        "newsletter.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        # Behind a reverse proxy on the same machine, the client address and https come from
        # X-Forwarded-For/-Proto (uvicorn trusts 127.0.0.1 by default; FORWARDED_ALLOW_IPS
        # widens it), which the login limits and the Secure cookie depend on.
        proxy_headers=True,
        server_header=False,
        log_level="info",
    )
