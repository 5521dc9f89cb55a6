"""The signing key must not be the published development key anywhere but a developer's machine.

`NEWSLETTER_SECRET_KEY` signs sessions and every link in mail (unsubscribe, preferences,
export, erase). Its default is in the source, so anyone can forge with it. It is accepted only
while `NEWSLETTER_BASE_URL` is a local address (localhost, a loopback IP): the links it signs
then reach nobody else. Checking the listen address was not enough, since behind a proxy on
the same host `serve` listens on loopback while the world reaches it; and the scheduler and the
CLI sign mail links without listening at all. Every process that signs asks here first.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from newsletter.settings import DEV_SECRET, Settings, get_settings


class InsecureSecretKey(RuntimeError):
    """The development key with a public base URL; the message names both variables."""


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local_url(url: str) -> bool:
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return False
    return host is not None and is_loopback(host)


def require_signing_key(settings: Settings | None = None) -> str:
    """The secret key to sign with; InsecureSecretKey if it is the published one in public."""
    settings = settings or get_settings()
    key = settings.newsletter_secret_key
    if key == DEV_SECRET and not is_local_url(settings.newsletter_base_url):
        raise InsecureSecretKey(
            "NEWSLETTER_SECRET_KEY is the published development key while NEWSLETTER_BASE_URL "
            f"({settings.newsletter_base_url}) is not a local address: anyone could forge "
            "sessions and mail links. Set NEWSLETTER_SECRET_KEY to a long random value, "
            'e.g. python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )
    return key
