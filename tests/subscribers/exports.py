"""Small export files of our own rows, shaped like each tool's documented export header, with
what the import must make of every row.

Each fixture carries the file's own quirks as those tools (or Excel re-saving them) write them:
a BOM, CRLF, `;` from a European Excel, Windows-1252, quoted commas and quotes, a JSON cell.
`expected` is the status each address must end with here; None means nothing is written (never
subscribed). Whoever left must never be active, and must be suppressed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Export:
    tool: str
    filename: str
    header: list[str]
    rows: list[tuple[str | None, list[str]]]  # (expected status, cells)
    delimiter: str = ","
    encoding: str = "utf-8"
    bom: bool = False
    newline: str = "\r\n"
    tags: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=self.delimiter, lineterminator=self.newline)
        writer.writerow(self.header)
        for _, cells in self.rows:
            writer.writerow(cells)
        data = buffer.getvalue().encode(self.encoding)
        return (b"\xef\xbb\xbf" + data) if self.bom else data

    def expected(self) -> dict[str, str | None]:
        email = self._email_column()
        return {cells[email].strip().lower(): status for status, cells in self.rows}

    def _email_column(self) -> int:
        lowered = [h.lower().replace("_", " ") for h in self.header]
        for name in ("email address", "email", "subscriber"):
            if name in lowered:
                return lowered.index(name)
        raise AssertionError(self.header)


MC_BASE = [
    "Email Address",
    "First Name",
    "Last Name",
    "Company",
    "MEMBER_RATING",
    "OPTIN_TIME",
    "OPTIN_IP",
    "CONFIRM_TIME",
    "CONFIRM_IP",
    "LATITUDE",
    "LONGITUDE",
    "GMTOFF",
    "DSTOFF",
    "TIMEZONE",
    "CC",
    "REGION",
    "LAST_CHANGED",
    "LEID",
    "EUID",
    "NOTES",
    "TAGS",
]


def _mc(
    email: str, first: str, last: str, tags: str = "", confirm: str = "2023-01-05 10:02:11"
) -> list[str]:
    return [
        email,
        first,
        last,
        "Acme, Ltd",
        "2",
        "2023-01-05 10:00:00",
        "203.0.113.5",
        confirm,
        "203.0.113.5",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        confirm,
        "111",
        "aaa",
        "",
        tags,
    ]


MAILCHIMP_SUBSCRIBED = Export(
    "mailchimp",
    "subscribed_members_export_1a2b.csv",
    MC_BASE,
    [
        ("active", _mc("ann@mc.example", "Ann", "Lee, Jr.", '"VIP","Early bird"')),
        ("active", _mc("BO@MC.example", 'Bo "the" Ng', "", "")),
    ],
    bom=True,
    tags={"ann@mc.example": ["VIP", "Early bird"]},
    names={"ann@mc.example": "Ann Lee, Jr.", "bo@mc.example": 'Bo "the" Ng'},
)

MAILCHIMP_UNSUBSCRIBED = Export(
    "mailchimp",
    "unsubscribed_members_export_1a2b.csv",
    [
        *MC_BASE,
        "UNSUB_TIME",
        "UNSUB_CAMPAIGN_TITLE",
        "UNSUB_CAMPAIGN_ID",
        "UNSUB_REASON",
        "UNSUB_REASON_OTHER",
    ],
    [
        (
            "unsubscribed",
            [
                *_mc("un@mc.example", "Una", "Ng"),
                "2024-02-01 08:00:00",
                "Weekly, #12",
                "c1",
                "NORMAL",
                "",
            ],
        ),
        # Even a row whose UNSUB_TIME is empty is in the unsubscribed file.
        ("unsubscribed", [*_mc("blank@mc.example", "Bl", "Ank"), "", "", "", "", ""]),
    ],
)

# Re-saved by a European Excel: `;`, Windows-1252, no BOM.
MAILCHIMP_CLEANED = Export(
    "mailchimp",
    "cleaned_members_export_1a2b.csv",
    [*MC_BASE, "CLEAN_TIME", "CLEAN_CAMPAIGN_TITLE", "CLEAN_CAMPAIGN_ID"],
    [
        (
            "bounced",
            [*_mc("gone@mc.example", "Zoë", "Müller"), "2024-03-01 09:00:00", "Weekly", "c2"],
        )
    ],
    delimiter=";",
    encoding="cp1252",
    names={"gone@mc.example": "Zoë Müller"},
)

SUBSTACK = Export(
    "substack",
    "email_list.csv",
    [
        "email",
        "active_subscription",
        "expiry",
        "plan",
        "email_disabled",
        "created_at",
        "first_payment_at",
    ],
    [
        (
            "active",
            ["reader@ss.example", "false", "", "other", "false", "2022-05-01T12:00:00.000Z", ""],
        ),
        (
            "active",
            [
                "paid@ss.example",
                "true",
                "2025-05-01",
                "yearly",
                "false",
                "2022-05-02T12:00:00.000Z",
                "2022-05-02T12:00:00.000Z",
            ],
        ),
        (
            "unsubscribed",
            ["off@ss.example", "false", "", "other", "true", "2022-05-03T12:00:00.000Z", ""],
        ),
    ],
    newline="\n",
)

BUTTONDOWN_TYPES = {
    "regular": "active",
    "premium": "active",
    "trialed": "active",
    "unpaid": "active",
    "gifted": "active",
    "churning": "active",
    "paused": "active",
    "past_due": "active",
    "unactivated": "pending",
    "unsubscribed": "unsubscribed",
    "removed": "unsubscribed",
    "spammy": "unsubscribed",
}
BUTTONDOWN = Export(
    "buttondown",
    "buttondown-subscribers.csv",
    [
        "id",
        "email",
        "notes",
        "metadata",
        "tags",
        "referrer_url",
        "creation_date",
        "secondary_id",
        "subscriber_type",
        "source",
    ],
    [
        (
            status,
            [
                f"id-{i}",
                f"{kind}@bd.example",
                "",
                "{}",
                "ai;tools" if i == 0 else "",
                "",
                "2021-07-01T10:00:00Z",
                str(i),
                kind,
                "import",
            ],
        )
        for i, (kind, status) in enumerate(BUTTONDOWN_TYPES.items())
    ],
)

KIT = Export(
    "kit",
    "kit-subscribers.csv",
    ["first_name", "email_address", "state", "created_at", "tags"],
    [
        ("active", ["Al", "al@kit.example", "active", "2020-01-01 00:00:00 UTC", "Newsletter,VIP"]),
        ("active", ["Cold", "cold@kit.example", "cold", "2020-01-01 00:00:00 UTC", ""]),
        ("pending", ["In", "inactive@kit.example", "inactive", "2020-01-01 00:00:00 UTC", ""]),
        (
            "unsubscribed",
            ["Ca", "cancelled@kit.example", "cancelled", "2020-01-01 00:00:00 UTC", ""],
        ),
        ("bounced", ["Bo", "bounced@kit.example", "bounced", "2020-01-01 00:00:00 UTC", ""]),
        (
            "complained",
            ["Co", "complained@kit.example", "complained", "2020-01-01 00:00:00 UTC", ""],
        ),
    ],
    tags={"al@kit.example": ["Newsletter", "VIP"]},
)

BEEHIIV = Export(
    "beehiiv",
    "beehiiv-export.csv",
    [
        "email",
        "status",
        "created_at",
        "subscription_tier",
        "utm_source",
        "utm_medium",
        "utm_channel",
        "utm_campaign",
        "referring_site",
        "referral_code",
    ],
    [
        (
            status,
            [
                f"{word}@bh.example",
                word,
                "2024-04-04 04:04:04",
                "free",
                "twitter",
                "",
                "website",
                "",
                "",
                "ABC",
            ],
        )
        for word, status in {
            "active": "active",
            "inactive": "unsubscribed",
            "validating": "pending",
            "pending": "pending",
            "invalid": "bounced",
            "needs_attention": "pending",
        }.items()
    ],
)

GHOST = Export(
    "ghost",
    "member-export-2024-05-05.csv",
    [
        "id",
        "email",
        "name",
        "note",
        "subscribed_to_emails",
        "complimentary_plan",
        "stripe_customer_id",
        "created_at",
        "deleted_at",
        "labels",
        "tiers",
    ],
    [
        (
            "active",
            [
                "6a1",
                "on@gh.example",
                "On, Person",
                'said "hi"',
                "true",
                "false",
                "",
                "2023-03-03T03:03:03.000Z",
                "",
                "VIP,Early",
                "Free",
            ],
        ),
        (
            "unsubscribed",
            [
                "6a2",
                "off@gh.example",
                "Off",
                "",
                "false",
                "false",
                "",
                "2023-03-03T03:03:03.000Z",
                "",
                "",
                "Free",
            ],
        ),
        (
            "unsubscribed",
            [
                "6a3",
                "deleted@gh.example",
                "Del",
                "",
                "true",
                "false",
                "",
                "2023-03-03T03:03:03.000Z",
                "2024-01-01T00:00:00.000Z",
                "",
                "",
            ],
        ),
    ],
    tags={"on@gh.example": ["VIP", "Early"]},
    names={"on@gh.example": "On, Person"},
)

LISTMONK = Export(
    "listmonk",
    "subscribers.csv",
    ["uuid", "email", "name", "attributes", "status", "created_at", "updated_at"],
    [
        (
            "active",
            [
                "u1",
                "en@lm.example",
                "En",
                '{"city": "Oslo, NO", "plan": "a \\"b\\""}',
                "enabled",
                "2022-02-02 02:02:02.123+00",
                "2022-02-02 02:02:02+00",
            ],
        ),
        (
            "unsubscribed",
            [
                "u2",
                "dis@lm.example",
                "Dis",
                "{}",
                "disabled",
                "2022-02-02 02:02:02+00",
                "2022-02-02 02:02:02+00",
            ],
        ),
        (
            "unsubscribed",
            [
                "u3",
                "block@lm.example",
                "Block",
                "{}",
                "blocklisted",
                "2022-02-02 02:02:02+00",
                "2022-02-02 02:02:02+00",
            ],
        ),
    ],
)

SENDY = Export(
    "sendy",
    "sendy-list.csv",
    ["Name", "Email", "Joined", "Last activity", "Status"],
    [
        (
            status,
            [f"{word.title()}", f"{word.replace(' ', '')}@sendy.example", "1700000000", "", word],
        )
        for word, status in {
            "Subscribed": "active",
            "Soft bounced": "active",
            "Unconfirmed": "pending",
            "Unsubscribed": "unsubscribed",
            "Bounced": "bounced",
            "Marked as spam": "complained",
        }.items()
    ],
)

# Tab-separated, as MailerLite's "export to Excel" then "Unicode text" gives.
MAILERLITE = Export(
    "mailerlite",
    "mailerlite-subscribers.csv",
    [
        "Subscriber",
        "Name",
        "Last name",
        "Status",
        "Subscribed",
        "Opted in",
        "Location",
        "Groups",
        "Sent",
        "Opens",
        "Clicks",
    ],
    [
        (
            status,
            [
                f"{word}@ml.example",
                word.title(),
                "Öz",
                word,
                "2023-06-06 06:06:06",
                "2023-06-06 06:07:00",
                "Berlin",
                "Weekly,Launch" if word == "active" else "",
                "3",
                "1",
                "0",
            ],
        )
        for word, status in {
            "active": "active",
            "unsubscribed": "unsubscribed",
            "unconfirmed": "pending",
            "bounced": "bounced",
            "junk": "complained",
        }.items()
    ],
    delimiter="\t",
)

ALL = [
    MAILCHIMP_SUBSCRIBED,
    MAILCHIMP_UNSUBSCRIBED,
    MAILCHIMP_CLEANED,
    SUBSTACK,
    BUTTONDOWN,
    KIT,
    BEEHIIV,
    GHOST,
    LISTMONK,
    SENDY,
    MAILERLITE,
]
