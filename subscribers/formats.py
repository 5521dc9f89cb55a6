"""Other newsletter tools' export files, recognised from their header, and what their status
words and flags mean here.

Each tool names the same few facts differently: the address, the person's name, whether they
are still subscribed (a status word, a timestamp, a flag), when they opted in, their tags. A
`Format` lists a tool's header names for each field and its status words; `detect` picks the
format whose distinctive headers the file has; `resolve` turns a header into a `Mapping` of
field → column, which the admin may override (`--map` on the command line, the selects on the
upload page).

The rule that matters most: a person the export says left, bounced or complained is never
made active. When a row has several signals (a status word and a flag), the most restrictive
one wins, and a status word this table does not know refuses the row rather than guessing.
"""

from __future__ import annotations

import csv
import enum
import re
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from datetime import UTC, datetime

from newsletter.errors import Refused

MAX_TAG = 100
MAX_TAGS = 50


class State(enum.IntEnum):
    """What a row says about the person, ordered from least to most restrictive."""

    ACTIVE = 0
    PENDING = 1  # never confirmed: stored, never mailed until they confirm themselves
    NEVER = 2  # never subscribed (e.g. Mailchimp's transactional contacts): nothing written
    UNSUBSCRIBED = 3
    BOUNCED = 4
    COMPLAINED = 5

    @property
    def left(self) -> bool:
        return self >= State.UNSUBSCRIBED


@dataclass(frozen=True)
class Verdict:
    state: State
    # Why, in the tool's own words, for the report and the suppression record.
    why: str
    # The suppression list's reason for someone who left (blocklisted, spammy, removed…).
    suppression: str = ""

    @property
    def reason(self) -> str:
        return self.suppression or self.state.name.lower()


SUBSCRIBED = Verdict(State.ACTIVE, "subscribed")


def _words(
    table: dict[State, tuple[str, ...]], suppression: dict[str, str] | None = None
) -> dict[str, Verdict]:
    reasons = suppression or {}
    return {
        word: Verdict(state, f'status "{word}"', reasons.get(word, ""))
        for state, words in table.items()
        for word in words
    }


# Words any tool may use in a status column, for a file of an unknown tool or a status column
# mapped by hand. "inactive" means unconfirmed to Kit but unsubscribed to beehiiv: alone it is
# read the safe way (not mailed).
GENERIC_WORDS = _words(
    {
        State.ACTIVE: (
            "active",
            "subscribed",
            "confirmed",
            "enabled",
            "regular",
            "premium",
            "paid",
            "free",
            "comp",
            "complimentary",
            "gifted",
            "trialed",
            "trialing",
            "trial",
            "unpaid",
            "churning",
            "past due",
            "cold",
            "valid",
            "soft bounced",
            "soft bounce",
            "yes",
            "true",
        ),
        State.PENDING: (
            "pending",
            "unconfirmed",
            "unactivated",
            "not confirmed",
            "validating",
            "needs attention",
            "double opt in pending",
        ),
        State.NEVER: ("transactional", "archived", "nonsubscribed", "non subscribed"),
        State.UNSUBSCRIBED: (
            "unsubscribed",
            "cancelled",
            "canceled",
            "opted out",
            "optout",
            "opt out",
            "disabled",
            "removed",
            "deleted",
            "inactive",
            "unsubscribe",
            "no",
            "false",
            "spammy",
            "blocklisted",
            "blacklisted",
            "blocked",
        ),
        State.BOUNCED: ("bounced", "cleaned", "hard bounced", "hard bounce", "invalid", "bounce"),
        State.COMPLAINED: (
            "complained",
            "spam",
            "marked as spam",
            "spam complaint",
            "abuse",
            "junk",
            "complaint",
        ),
    },
    {
        "spammy": "spammy",
        "blocklisted": "blocklisted",
        "blacklisted": "blocklisted",
        "blocked": "blocklisted",
        "removed": "removed",
        "deleted": "deleted",
        "disabled": "disabled",
    },
)

FIELDS = (
    "email",
    "name",
    "first_name",
    "last_name",
    "status",
    "list_status",
    "tags",
    "signup_at",
    "consent_ip",
    "left_at",
    "unsubscribed_flag",
    "subscribed_flag",
    "paused",
)
# What the admin may map by hand (`--map field=Header`); the rest are flags a format knows.
MAPPABLE = ("email", "name", "first_name", "last_name", "status", "tags", "signup_at")


@dataclass(frozen=True)
class Format:
    key: str
    label: str
    # Header names (normalised by header_key) that only this tool's export has; `min_markers`
    # of them identify the file.
    markers: frozenset[str]
    min_markers: int
    columns: MappingABC[str, tuple[str, ...]]
    words: MappingABC[str, Verdict] = field(default_factory=dict)
    # A column whose mere presence says what the whole file is: Mailchimp exports one file per
    # state, and every row of the "unsubscribed" file left, whatever its cells hold.
    file_states: MappingABC[str, Verdict] = field(default_factory=dict)
    tag_separator: str = ","

    def verdict_for(self, word: str) -> Verdict | None:
        key = header_key(word)
        return self.words.get(key) or GENERIC_WORDS.get(key)


def header_key(cell: str) -> str:
    """A header cell as compared: lower case, `_ - .` as spaces, spaces collapsed."""
    return " ".join(re.sub(r"[_\-.]", " ", cell.strip().strip('"').lower()).split())


EMAIL_HEADERS = (
    "email",
    "e mail",
    "email address",
    "e mail address",
    "emailaddress",
    "mail",
    "email addr",
    "subscriber",
    "subscriber email",
)
NAME_HEADERS = ("name", "full name", "fullname", "display name", "subscriber name")
FIRST_NAME_HEADERS = ("first name", "firstname", "first", "given name", "fname")
LAST_NAME_HEADERS = ("last name", "lastname", "last", "surname", "family name", "lname")

_COMMON: dict[str, tuple[str, ...]] = {
    "email": EMAIL_HEADERS,
    "name": NAME_HEADERS,
    "first_name": FIRST_NAME_HEADERS,
    "last_name": LAST_NAME_HEADERS,
}


def _cols(**overrides: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The tool's own header names first, then the common ones (a re-saved file may rename)."""
    columns = {**_COMMON, **overrides}
    for name, aliases in _COMMON.items():
        columns[name] = tuple(dict.fromkeys((*columns[name], *aliases)))
    return columns


GENERIC = Format(
    "generic",
    "a CSV file (no known tool)",
    frozenset(),
    1,
    _cols(
        # Whatever a tool calls the column that says whether the person is still on the list:
        # a file of an unknown tool (or a tool's newer export) with one of these is read by
        # it, and a word in it that is not known refuses the row, never imports it as active.
        # Mailchimp's newer contact export says "Email Marketing", Buttondown's "type",
        # MailerLite classic's "Type".
        status=(
            "status",
            "state",
            "subscription status",
            "subscriber status",
            "member status",
        ),
        # A second status column, read beside the first (the stricter word wins): a classic
        # MailerLite export has both "State" (the address's) and "Type" (the status).
        list_status=(
            "email marketing",
            "email status",
            "marketing status",
            "type",
            "subscriber type",
        ),
        tags=("tags", "labels", "groups", "topics", "lists"),
        signup_at=(
            "signup date",
            "signed up",
            "subscribed at",
            "created at",
            "created",
            "opt in date",
            "optin date",
            "optin time",
            "date added",
            "joined",
        ),
        unsubscribed_flag=(
            "unsubscribed",
            "unsubscribed at",
            "unsubscribe date",
            "email disabled",
            "opted out",
        ),
        subscribed_flag=("subscribed to emails", "email opt in", "accepts marketing"),
    ),
    tag_separator="",
)

OWN = Format(
    "newsletter",
    "this service's own export",
    frozenset({"consent method", "consent at", "consent ip", "confirmed at", "paused", "source"}),
    3,
    {
        "email": ("email",),
        "name": ("name",),
        "status": ("status",),
        "tags": ("topics", "tags"),
        "signup_at": ("consent at", "confirmed at"),
        "consent_ip": ("consent ip",),
        "left_at": ("unsubscribed at",),
        "paused": ("paused",),
    },
    _words(
        {
            State.ACTIVE: ("active",),
            State.PENDING: ("pending",),
            State.UNSUBSCRIBED: ("unsubscribed",),
            State.BOUNCED: ("bounced",),
            State.COMPLAINED: ("complained",),
        }
    ),
    tag_separator=";",
)

MAILCHIMP = Format(
    "mailchimp",
    "Mailchimp (audience export)",
    frozenset(
        {
            "member rating",
            "optin time",
            "optin ip",
            "confirm time",
            "confirm ip",
            "leid",
            "euid",
            "last changed",
            "unsub time",
            "clean time",
            "gmtoff",
            "dstoff",
        }
    ),
    2,
    _cols(
        email=("email address", "email"),
        tags=("tags",),
        signup_at=("confirm time", "optin time"),
        consent_ip=("confirm ip", "optin ip"),
        left_at=("clean time", "unsub time"),
        status=("status", "member status"),
    ),
    _words(
        {
            State.ACTIVE: ("subscribed",),
            State.PENDING: ("pending",),
            State.NEVER: ("transactional", "archived"),
            State.UNSUBSCRIBED: ("unsubscribed",),
            State.BOUNCED: ("cleaned",),
        }
    ),
    file_states={
        "clean time": Verdict(State.BOUNCED, "the Mailchimp cleaned file (CLEAN_TIME)"),
        "unsub time": Verdict(State.UNSUBSCRIBED, "the Mailchimp unsubscribed file (UNSUB_TIME)"),
    },
)

SUBSTACK = Format(
    "substack",
    "Substack (email list export)",
    frozenset({"email disabled", "active subscription", "first payment at", "expiry", "plan"}),
    2,
    _cols(
        email=("email",),
        signup_at=("created at",),
        unsubscribed_flag=("email disabled",),
    ),
)

BUTTONDOWN = Format(
    "buttondown",
    "Buttondown (subscribers export)",
    frozenset({"subscriber type", "creation date", "secondary id", "referrer url", "upgrade date"}),
    2,
    _cols(
        email=("email", "email address"),
        status=("subscriber type", "type"),
        tags=("tags",),
        signup_at=("creation date", "date"),
    ),
    _words(
        {
            State.ACTIVE: (
                "regular",
                "premium",
                "trialed",
                "unpaid",
                "gifted",
                "churning",
                "paused",
                "past due",
            ),
            State.PENDING: ("unactivated",),
            State.UNSUBSCRIBED: ("unsubscribed", "removed", "spammy"),
            # Mail to them bounces (Buttondown stops sending): a bounce here too.
            State.BOUNCED: ("undeliverable",),
        },
        {"removed": "removed", "spammy": "spammy"},
    ),
)

KIT = Format(
    "kit",
    "Kit / ConvertKit (subscribers export)",
    frozenset({"email address", "state", "first name", "created at"}),
    3,
    _cols(
        email=("email address", "email"),
        status=("state", "status"),
        tags=("tags",),
        signup_at=("created at", "subscribed at"),
    ),
    _words(
        {
            State.ACTIVE: ("active", "cold"),
            State.PENDING: ("inactive", "unconfirmed"),
            State.UNSUBSCRIBED: ("cancelled", "canceled"),
            State.BOUNCED: ("bounced",),
            State.COMPLAINED: ("complained",),
        }
    ),
)

BEEHIIV = Format(
    "beehiiv",
    "beehiiv (subscribers export)",
    frozenset(
        {
            "utm source",
            "utm medium",
            "utm campaign",
            "utm channel",
            "referring site",
            "subscription tier",
            "referral code",
            "subscription premium tier names",
        }
    ),
    2,
    _cols(
        email=("email",),
        status=("status",),
        tags=("tags",),
        signup_at=("created at", "created"),
    ),
    _words(
        {
            State.ACTIVE: ("active",),
            State.PENDING: ("validating", "pending", "needs attention"),
            State.UNSUBSCRIBED: ("inactive",),
            State.BOUNCED: ("invalid",),
        }
    ),
)

GHOST = Format(
    "ghost",
    "Ghost (members export)",
    frozenset(
        {
            "subscribed to emails",
            "complimentary plan",
            "stripe customer id",
            "deleted at",
            "labels",
            "tiers",
            "note",
        }
    ),
    2,
    _cols(
        email=("email",),
        tags=("labels",),
        signup_at=("created at",),
        subscribed_flag=("subscribed to emails", "subscribed"),
        unsubscribed_flag=("deleted at",),
    ),
)

LISTMONK = Format(
    "listmonk",
    "listmonk (subscribers export)",
    frozenset({"uuid", "attributes", "attribs", "subscription status", "subscription created at"}),
    2,
    _cols(
        email=("email",),
        status=("status",),
        list_status=("subscription status",),
        tags=("lists", "tags"),
        signup_at=("subscription created at", "created at"),
    ),
    _words(
        {
            State.ACTIVE: ("enabled", "confirmed"),
            State.PENDING: ("unconfirmed",),
            # A disabled subscriber is not mailed by listmonk either; blocklisted never is.
            State.UNSUBSCRIBED: ("disabled", "blocklisted", "unsubscribed"),
        },
        {"blocklisted": "blocklisted", "disabled": "disabled"},
    ),
)

SENDY = Format(
    "sendy",
    "Sendy (list export)",
    frozenset({"joined", "last activity", "gdpr", "referrer"}),
    1,
    _cols(
        email=("email",),
        status=("status",),
        signup_at=("joined", "date"),
    ),
    _words(
        {
            State.ACTIVE: ("subscribed", "soft bounced"),
            State.PENDING: ("unconfirmed",),
            State.UNSUBSCRIBED: ("unsubscribed",),
            State.BOUNCED: ("bounced",),
            State.COMPLAINED: ("marked as spam", "complained"),
        }
    ),
)

MAILERLITE = Format(
    "mailerlite",
    "MailerLite (subscribers export)",
    frozenset(
        {
            "groups",
            "opted in",
            "date subscribed",
            "date unsubscribed",
            "subscribed at",
            "unsubscribed at",
            "sent",
            "opens",
            "clicks",
            "ip address",
            "opted in at",
        }
    ),
    3,
    _cols(
        email=("email", "subscriber"),
        last_name=("last name", "lastname", "last_name"),
        status=("status", "type"),
        tags=("groups",),
        signup_at=("opted in", "opted in at", "date subscribed", "subscribed at", "subscribed"),
        consent_ip=("ip address", "optin ip"),
        unsubscribed_flag=("date unsubscribed", "unsubscribed at"),
    ),
    _words(
        {
            State.ACTIVE: ("active",),
            State.PENDING: ("unconfirmed",),
            State.UNSUBSCRIBED: ("unsubscribed",),
            State.BOUNCED: ("bounced",),
            State.COMPLAINED: ("junk",),
        }
    ),
)

FORMATS: dict[str, Format] = {
    f.key: f
    for f in (
        OWN,
        MAILCHIMP,
        SUBSTACK,
        BUTTONDOWN,
        KIT,
        BEEHIIV,
        GHOST,
        LISTMONK,
        SENDY,
        MAILERLITE,
        GENERIC,
    )
}


class MappingError(Refused):
    """The header cannot be read as a list with this format and mapping; nothing was written."""


def detect(keys: list[str]) -> Format:
    """The format whose distinctive headers the file has most of (the generic one if none)."""
    present = set(keys)
    best, score = GENERIC, 0
    for candidate in FORMATS.values():
        hits = len(candidate.markers & present)
        if hits >= candidate.min_markers and hits > score:
            best, score = candidate, hits
    return best


@dataclass(frozen=True)
class Mapping:
    """Which column holds which field (index into the row), for one file."""

    fmt: Format
    headers: tuple[str, ...]
    columns: MappingABC[str, int]
    # Verdict for every row of the file, from a column whose presence says so (Mailchimp).
    file_state: Verdict | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "format": self.fmt.key,
            "format_label": self.fmt.label,
            # A bare list of addresses has no header: its column is named by number.
            "columns": {
                f: self.headers[i] if i < len(self.headers) else f"column {i + 1}"
                for f, i in self.columns.items()
            },
            "file_state": self.file_state.why if self.file_state else None,
        }


def parse_map(values: list[str]) -> dict[str, str]:
    """`email=Email Address,first_name=FNAME` (or several --map options) → {field: header}.

    A comma splits only before another `field=`, so a header may itself hold a comma; an empty
    header (`tags=`) means "do not read this field"."""
    fields = "|".join(FIELDS)
    wanted: dict[str, str] = {}
    for value in values:
        for part in re.split(rf",(?=\s*(?:{fields})\s*=)", value):
            if not part.strip():
                continue
            name, sep, header = part.partition("=")
            name = name.strip().lower()
            if not sep or name not in MAPPABLE:
                raise MappingError(
                    f"--map {part.strip()!r}: expected FIELD=HEADER with FIELD one of "
                    f"{', '.join(MAPPABLE)}"
                )
            wanted[name] = header.strip()
    return wanted


def resolve(
    first_row: list[str], fmt: Format | None = None, overrides: MappingABC[str, str] | None = None
) -> Mapping:
    """The mapping for a file whose first non-blank row is `first_row`."""
    keys = [header_key(c) for c in first_row]
    chosen = fmt or detect(keys)
    columns: dict[str, int] = {}
    for name, aliases in chosen.columns.items():
        index = next((keys.index(a) for a in aliases if a in keys), None)
        if index is not None:
            columns[name] = index
    for name, header in (overrides or {}).items():
        if not header:
            columns.pop(name, None)
            if name == "status":
                # "This file has no status column": not its second one either.
                columns.pop("list_status", None)
            continue
        if header_key(header) not in keys:
            found = ", ".join(repr(c.strip()) for c in first_row if c.strip()) or "nothing"
            raise MappingError(f"--map {name}={header!r}: no such column (found {found})")
        columns[name] = keys.index(header_key(header))
    file_state = next((v for k, v in chosen.file_states.items() if k in keys), None)
    if "email" not in columns:
        raise MappingError(_no_email(first_row))
    return Mapping(chosen, tuple(c.strip() for c in first_row), columns, file_state)


def _no_email(first_row: list[str]) -> str:
    found = ", ".join(repr(c.strip()) for c in first_row if c.strip()) or "nothing"
    return (
        f"no email column in the header (found {found}); name one 'email' or 'email address', "
        "or map one: --map email=HEADER (on the upload page: the Email select)"
    )


# --- reading cells ---------------------------------------------------------------------------

_TRUE = frozenset({"true", "yes", "1", "y", "t", "on", "x"})
_FALSE = frozenset({"false", "no", "0", "n", "f", "off"})


def is_true(cell: str) -> bool | None:
    value = cell.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def parse_time(cell: str) -> datetime | None:
    """A timestamp as tools write them (ISO 8601 with or without zone or `Z`, Mailchimp's
    `2024-01-31 09:15:00`, Unix seconds); None for an empty or unreadable cell. A time without
    a zone is UTC, which is what these exports use."""
    value = cell.strip()
    if not value:
        return None
    if value.isdigit() and 9 <= len(value) <= 11:
        return datetime.fromtimestamp(int(value), UTC)
    try:
        parsed = datetime.fromisoformat(value.replace(" UTC", ""))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def split_tags(cell: str, separator: str) -> list[str]:
    """Tag names from one cell: Mailchimp quotes each (`"VIP","Early"`), others separate with
    `,` or `;`. Control characters and lone surrogates go; order kept, repeats dropped."""
    value = cell.strip()
    if not value:
        return []
    if value.startswith('"'):
        parts = next(csv.reader([value], skipinitialspace=True))
    else:
        # No separator known (a file of no known tool): `;` if the cell has one, else `,`.
        parts = value.split(separator or (";" if ";" in value else ","))
    cleaned = (" ".join(_CONTROL.sub(" ", part).split()) for part in parts)
    return list(dict.fromkeys(tag for tag in cleaned if tag))
