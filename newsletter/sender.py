"""Who the mail is from, as every email shows it: the name, the postal address, the logo.

CAN-SPAM wants a valid physical postal address in every commercial email, so the sendgrid
transport refuses to send without NEWSLETTER_POSTAL_ADDRESS; the outbox (demos, development)
prints `POSTAL_PLACEHOLDER` instead, which says plainly what is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import Refused
from newsletter.settings import Settings, get_settings
from newsletter.templating import TEMPLATES_DIR

POSTAL_PLACEHOLDER = "[postal address: set NEWSLETTER_POSTAL_ADDRESS]"
DEFAULT_LOGO = TEMPLATES_DIR / "email" / "logo.png"
LOGO_PATH = "/brand/logo"  # where the app serves the logo file
LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
_NOT_PRINTABLE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


class SenderConfigError(Refused):
    """A sender setting that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Sender:
    name: str
    postal_lines: tuple[str, ...]
    # The app's LOGO_PATH (a renderer prefixes its base URL) or an absolute URL; None: no logo.
    logo_src: str | None
    logo_alt: str

    def logo_url(self, base_url: str) -> str | None:
        if self.logo_src is None or self.logo_src.startswith(("https://", "http://")):
            return self.logo_src
        return base_url.rstrip("/") + self.logo_src

    @property
    def postal_address(self) -> str:
        return ", ".join(self.postal_lines)


def postal_lines(raw: str) -> tuple[str, ...]:
    cleaned = _NOT_PRINTABLE.sub(" ", raw.replace("\\n", "\n").replace("\r\n", "\n"))
    return tuple(line for line in (" ".join(part.split()) for part in cleaned.split("\n")) if line)


def require_postal_address(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    if not postal_lines(settings.newsletter_postal_address):
        raise SenderConfigError(
            "NEWSLETTER_TRANSPORT=sendgrid needs NEWSLETTER_POSTAL_ADDRESS: every email must "
            "carry the sender's postal address (CAN-SPAM); set it to your mailing address"
        )


def logo_file(settings: Settings | None = None) -> Path | None:
    """The file the app serves at LOGO_PATH (None: no logo, or a logo given as a URL)."""
    value = (settings or get_settings()).newsletter_logo.strip()
    if value.lower() == "none" or value.startswith(("https://", "http://")):
        return None
    path = Path(value) if value else DEFAULT_LOGO
    if path.suffix.lower() not in LOGO_TYPES:
        raise SenderConfigError(
            f"NEWSLETTER_LOGO={value!r}: a logo file must be .png, .jpg or .gif"
        )
    return path


def sender(settings: Settings | None = None) -> Sender:
    settings = settings or get_settings()
    lines = postal_lines(settings.newsletter_postal_address) or (POSTAL_PLACEHOLDER,)
    value = settings.newsletter_logo.strip()
    if value.startswith(("https://", "http://")):
        logo_src: str | None = value
    else:
        logo_src = LOGO_PATH if logo_file(settings) is not None else None
    alt = " ".join(settings.newsletter_logo_alt.split()) or f"{settings.newsletter_from_name} logo"
    return Sender(settings.newsletter_from_name, lines, logo_src, alt)
