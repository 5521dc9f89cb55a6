"""Configuration from the environment and a `.env` file.

The variable names are a public contract (see PRODUCT.md): each field is named after its
environment variable, lower-cased, so `grep DATABASE_URL` finds both the docs and the code.
"""

from __future__ import annotations

from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsletter.errors import Refused

DEV_SECRET = "dev-insecure-secret-change-me"  # noqa: S105 - refused by `serve` outside dev


def zone(name: str) -> ZoneInfo:
    """NEWSLETTER_TIMEZONE's zone; ValueError saying what is wrong (the settings' check and
    the schedule's, scheduling/slots.py)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("not an IANA time zone (e.g. Europe/Paris)") from None


def wall_clock(raw: str) -> time:
    """NEWSLETTER_SCHEDULE_TIME's local time; ValueError saying what is wrong."""
    try:
        at = time.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError("expected a local time like 09:00") from None
    if at.tzinfo is not None:
        raise ValueError("give a wall-clock time; the zone is NEWSLETTER_TIMEZONE")
    return at


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # No setting means anything infinite or not-a-number (a rate of inf, a timeout of nan).
        allow_inf_nan=False,
    )

    database_url: str = "sqlite:///newsletter.db"

    # Delivery
    sendgrid_api_key: str | None = None
    sendgrid_api_host: str = "https://api.sendgrid.com"
    sendgrid_timeout_seconds: float = 30.0
    sendgrid_sandbox_mode: bool = False
    sendgrid_webhook_public_key: str | None = None
    # A signed webhook older (or newer) than this is refused: a captured request cannot be replayed.
    sendgrid_webhook_max_age_seconds: int = Field(default=600, ge=1)
    newsletter_transport: Literal["sendgrid", "outbox"] | None = None
    newsletter_outbox_dir: Path = Path("outbox")
    newsletter_send_rate_limit: float = Field(default=0.0, ge=0)  # emails/s; 0 = unlimited
    newsletter_batch_size: int = Field(default=1000, ge=1, le=1000)
    newsletter_send_deadline_seconds: float = Field(default=3600.0, gt=0)
    # Requests one worker process keeps in flight at once (threads; each claims its own batch).
    newsletter_send_concurrency: int = Field(default=4, ge=1, le=32)
    # A batch in flight this long, claimed by a worker on another machine, is taken as crashed.
    newsletter_send_stuck_seconds: float = Field(default=300.0, gt=0)
    # Healing (docs/operations.md): an uncertain delivery SendGrid's webhook names is settled
    # from that evidence; one it never names, once the webhook has shown SendGrid took later
    # requests and this long has passed, is resent once by the scheduler's tick, in batches of
    # NEWSLETTER_RESEND_BATCH_SIZE (a crash during the resend leaves fewer uncertain).
    newsletter_uncertain_resend_after_seconds: float = Field(default=3600.0, gt=0)
    newsletter_uncertain_auto_resend: bool = True
    newsletter_resend_batch_size: int = Field(default=100, ge=1, le=1000)
    # Protecting the sender (docs/operations.md): a send pauses itself, and the editors are told,
    # once hard bounces or spam complaints among what it has sent pass these shares (after at
    # least NEWSLETTER_PAUSE_MIN_SENT sent). Gmail and Yahoo require bulk senders to keep spam
    # complaints under 0.3% and advise under 0.1%; 2% hard bounces is a list that needs cleaning.
    newsletter_pause_bounce_rate: float = Field(default=0.02, gt=0, le=1)
    newsletter_pause_complaint_rate: float = Field(default=0.001, gt=0, le=1)
    newsletter_pause_min_sent: int = Field(default=200, ge=1)
    # Soft bounces (a full mailbox, a block) in this many issues in a row pause a subscriber.
    newsletter_soft_bounce_pause_after: int = Field(default=3, ge=1)
    # People who have not clicked, voted or opened (a person's open, not a proxy's) in this many
    # issues in a row get one "still want this?" mail; no answer within
    # NEWSLETTER_REENGAGE_ANSWER_DAYS pauses them. NEWSLETTER_REENGAGE=false turns it off.
    newsletter_reengage: bool = True
    newsletter_reengage_after_issues: int = Field(default=8, ge=2, le=100)
    newsletter_reengage_answer_days: float = Field(default=14.0, gt=0)
    # Tracking events keep SendGrid's raw payload, the user agent and the provider's detail
    # text this many days, then `newsletter maintenance` (daily from the scheduler) clears
    # them; the facts stay. 0 keeps them for ever.
    newsletter_event_detail_retention_days: int = Field(default=90, ge=0, le=36500)

    # Identity of the list
    newsletter_from_email: str = "verdicts@aitoolverdicts.example"
    newsletter_from_name: str = "Weekly AI Tool Verdicts"
    newsletter_list_id: str = "weekly-verdicts.aitoolverdicts.example"
    newsletter_base_url: str = "http://localhost:8000"
    # The sender's postal address in every footer (CAN-SPAM): required by the sendgrid transport;
    # the outbox (demo, development) prints a placeholder without it. A newline starts a line.
    newsletter_postal_address: str = Field(default="", max_length=500)
    # The logo at the top of every email: empty for the bundled one, `none` for no logo, a PNG,
    # JPEG or GIF file the app serves at /brand/logo, or an https:// URL used as it is.
    newsletter_logo: str = Field(default="", max_length=2000)
    newsletter_logo_alt: str = Field(default="", max_length=200)
    newsletter_site_url: str = "https://aitoolverdicts.example"
    newsletter_secret_key: str = DEV_SECRET
    # Keys the one-way hashes of suppressed and erased addresses; defaults to the secret key.
    # Set it once and never rotate it: a new key would forget every suppression.
    newsletter_suppression_key: str | None = None
    newsletter_tracking: bool = True
    # Pixel/link/vote hits this soon after a delivery was sent are scanners and prefetchers.
    newsletter_machine_window_seconds: int = Field(default=60, ge=0)

    # The weekly issue
    newsletter_max_matchups: int = Field(default=8, ge=1)
    newsletter_inbox_dir: Path = Path("inbox")
    newsletter_schedule_day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    newsletter_schedule_time: str = "09:00"
    newsletter_timezone: str = "Europe/Paris"
    newsletter_approval_policy: Literal["review", "auto"] = "review"
    newsletter_misfire_grace_seconds: int = Field(default=6 * 3600, ge=0)
    # The weekly job builds the draft; the send goes this long after it, so editors can review
    # (policy review) or hold it (policy auto) before anything leaves.
    newsletter_send_delay_minutes: int = Field(default=120, ge=0)
    # How often the scheduler looks for due work (builds, approved issues, resumable sends).
    newsletter_tick_seconds: int = Field(default=30, ge=1)
    newsletter_editor_emails: str = ""

    @field_validator("newsletter_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        # Every command shows times in it (the editor's pages, `issue schedule`): refused at
        # once, not as a traceback on the first page that formats a time.
        zone(value)
        return value

    @field_validator("newsletter_schedule_time")
    @classmethod
    def _wall_clock(cls, value: str) -> str:
        wall_clock(value)
        return value

    @field_validator("newsletter_tracking", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        # Operators write NEWSLETTER_TRACKING=off; pydantic only knows true/false/1/0.
        if isinstance(value, str) and value.strip().lower() in {"on", "off"}:
            return value.strip().lower() == "on"
        return value

    @property
    def transport(self) -> Literal["sendgrid", "outbox"]:
        """The outbox is the default whenever there is no API key to send with."""
        if self.newsletter_transport is not None:
            return self.newsletter_transport
        return "sendgrid" if self.sendgrid_api_key else "outbox"

    @property
    def editor_emails(self) -> list[str]:
        return [e.strip() for e in self.newsletter_editor_emails.split(",") if e.strip()]


class SettingsError(Refused):
    """A setting whose value cannot be used; the message names each variable and why."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings, read once. A bad value is refused as a sentence per variable (every
    command, `serve` and the scheduler print it instead of a traceback), without repeating the
    value: it may be a key or a password."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        name = str(error["loc"][0]).upper() if error["loc"] else "a setting"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message[:1].lower()}{message[1:]}")
    return "bad setting in the environment or .env: " + "; ".join(problems)


def reset_settings() -> None:
    """Forget the cached settings (tests and `--env` switches change the environment)."""
    get_settings.cache_clear()
