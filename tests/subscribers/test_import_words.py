"""What every status word, flag, header and cell of each tool means here, written out as the
README states it (a spec independent of the tables in subscribers/formats.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from subscribers import formats
from subscribers.formats import FORMATS, State

A, P, N, U, B, C = (
    State.ACTIVE,
    State.PENDING,
    State.NEVER,
    State.UNSUBSCRIBED,
    State.BOUNCED,
    State.COMPLAINED,
)

WORDS: dict[str, dict[str, State]] = {
    "newsletter": {"active": A, "pending": P, "unsubscribed": U, "bounced": B, "complained": C},
    "mailchimp": {
        "subscribed": A,
        "pending": P,
        "transactional": N,
        "archived": N,
        "unsubscribed": U,
        "cleaned": B,
    },
    "buttondown": {
        "regular": A,
        "premium": A,
        "trialed": A,
        "unpaid": A,
        "gifted": A,
        "churning": A,
        "paused": A,
        "past_due": A,
        "unactivated": P,
        "unsubscribed": U,
        "removed": U,
        "spammy": U,
    },
    "kit": {
        "active": A,
        "cold": A,
        "inactive": P,
        "unconfirmed": P,
        "cancelled": U,
        "canceled": U,
        "bounced": B,
        "complained": C,
    },
    "beehiiv": {
        "active": A,
        "validating": P,
        "pending": P,
        "needs_attention": P,
        "inactive": U,
        "invalid": B,
    },
    "listmonk": {
        "enabled": A,
        "confirmed": A,
        "unconfirmed": P,
        "disabled": U,
        "blocklisted": U,
        "unsubscribed": U,
    },
    "sendy": {
        "Subscribed": A,
        "Soft bounced": A,
        "Unconfirmed": P,
        "Unsubscribed": U,
        "Bounced": B,
        "Marked as spam": C,
        "complained": C,
    },
    "mailerlite": {"active": A, "unconfirmed": P, "unsubscribed": U, "bounced": B, "junk": C},
    "generic": {
        **dict.fromkeys(
            [
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
            ],
            A,
        ),
        **dict.fromkeys(
            [
                "pending",
                "unconfirmed",
                "unactivated",
                "not confirmed",
                "validating",
                "needs attention",
                "double opt-in pending",
            ],
            P,
        ),
        **dict.fromkeys(["transactional", "archived", "nonsubscribed", "non-subscribed"], N),
        **dict.fromkeys(
            [
                "unsubscribed",
                "cancelled",
                "canceled",
                "opted out",
                "optout",
                "opt-out",
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
            ],
            U,
        ),
        **dict.fromkeys(
            ["bounced", "cleaned", "hard bounced", "hard bounce", "invalid", "bounce"], B
        ),
        **dict.fromkeys(
            [
                "complained",
                "spam",
                "marked as spam",
                "spam complaint",
                "abuse",
                "junk",
                "complaint",
            ],
            C,
        ),
    },
}
# Who left, suppressed under the tool's own word.
SUPPRESSION = {
    ("buttondown", "removed"): "removed",
    ("buttondown", "spammy"): "spammy",
    ("listmonk", "blocklisted"): "blocklisted",
    ("listmonk", "disabled"): "disabled",
    ("generic", "blacklisted"): "blocklisted",
    ("generic", "blocked"): "blocklisted",
    ("generic", "deleted"): "deleted",
    ("kit", "cancelled"): "",
}

CASES = [(tool, word, state) for tool, words in WORDS.items() for word, state in words.items()]


@pytest.mark.parametrize(("tool", "word", "state"), CASES, ids=[f"{t}:{w}" for t, w, _ in CASES])
def test_each_status_word_means_what_the_readme_says(tool: str, word: str, state: State) -> None:
    for spelling in (word, word.upper(), f"  {word.title()} "):
        verdict = FORMATS[tool].verdict_for(spelling)
        assert verdict is not None and verdict.state == state, spelling
    assert verdict.why == f'status "{formats.header_key(word)}"'
    expected = SUPPRESSION.get((tool, word), "")
    if expected or (tool, word) in SUPPRESSION:
        assert verdict.suppression == expected
        assert verdict.reason == (expected or state.name.lower())


def test_a_word_no_table_knows_is_no_verdict() -> None:
    for fmt in FORMATS.values():
        assert fmt.verdict_for("suspended") is None
        assert fmt.verdict_for("") is None


def test_states_are_ordered_from_least_to_most_restrictive() -> None:
    assert [s.value for s in (A, P, N, U, B, C)] == [0, 1, 2, 3, 4, 5]
    assert [s.left for s in (A, P, N, U, B, C)] == [False, False, False, True, True, True]


HEADERS = {
    "newsletter": "email,name,status,paused,source,consent_at,consent_method,consent_ip,confirmed_at,unsubscribed_at,created_at",
    "mailchimp": "Email Address,First Name,Last Name,MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,LEID,EUID,TAGS",
    "substack": "email,active_subscription,expiry,plan,email_disabled,created_at,first_payment_at",
    "buttondown": "id,email,notes,tags,referrer_url,creation_date,secondary_id,subscriber_type",
    "kit": "first_name,email_address,state,created_at,tags",
    "beehiiv": "email,status,created_at,subscription_tier,utm_source,utm_medium,referral_code",
    "ghost": "id,email,name,note,subscribed_to_emails,complimentary_plan,stripe_customer_id,created_at,deleted_at,labels,tiers",
    "listmonk": "uuid,email,name,attributes,status,created_at,updated_at",
    "sendy": "Name,Email,Joined,Last activity,Status",
    "mailerlite": "Subscriber,Name,Last name,Status,Subscribed,Opted in,Groups,Sent,Opens,Clicks",
    "generic": "E-Mail,Vorname,Status",
}
COLUMNS = {
    "newsletter": {
        "email": "email",
        "name": "name",
        "status": "status",
        "tags": None,
        "signup_at": "consent_at",
        "consent_ip": "consent_ip",
        "left_at": "unsubscribed_at",
        "paused": "paused",
    },
    "mailchimp": {
        "email": "Email Address",
        "first_name": "First Name",
        "last_name": "Last Name",
        "tags": "TAGS",
        "signup_at": "CONFIRM_TIME",
        "consent_ip": "CONFIRM_IP",
    },
    "substack": {
        "email": "email",
        "signup_at": "created_at",
        "unsubscribed_flag": "email_disabled",
    },
    "buttondown": {
        "email": "email",
        "status": "subscriber_type",
        "tags": "tags",
        "signup_at": "creation_date",
    },
    "kit": {
        "email": "email_address",
        "first_name": "first_name",
        "status": "state",
        "tags": "tags",
        "signup_at": "created_at",
    },
    "beehiiv": {"email": "email", "status": "status", "signup_at": "created_at"},
    "ghost": {
        "email": "email",
        "name": "name",
        "tags": "labels",
        "signup_at": "created_at",
        "subscribed_flag": "subscribed_to_emails",
        "unsubscribed_flag": "deleted_at",
    },
    "listmonk": {"email": "email", "name": "name", "status": "status", "signup_at": "created_at"},
    "sendy": {"email": "Email", "name": "Name", "status": "Status", "signup_at": "Joined"},
    "mailerlite": {
        "email": "Subscriber",
        "name": "Name",
        "last_name": "Last name",
        "status": "Status",
        "tags": "Groups",
        "signup_at": "Opted in",
    },
    "generic": {"email": "E-Mail", "status": "Status"},
}


@pytest.mark.parametrize("tool", list(HEADERS))
def test_each_tools_header_is_recognised_and_mapped(tool: str) -> None:
    row = HEADERS[tool].split(",")
    mapping = formats.resolve(row)
    assert mapping.fmt.key == tool
    found = mapping.to_json()["columns"]
    for field, header in COLUMNS[tool].items():
        assert found.get(field) == header, (field, found)
    assert formats.resolve([c.upper() for c in row]).fmt.key == tool
    # Forcing the format reads the same.
    assert formats.resolve(row, FORMATS[tool]).columns == mapping.columns


def test_mailchimps_file_kind_comes_from_its_columns() -> None:
    base = HEADERS["mailchimp"].split(",")
    assert formats.resolve(base).file_state is None
    unsub = formats.resolve([*base, "UNSUB_TIME", "UNSUB_REASON"])
    assert unsub.file_state is not None and unsub.file_state.state == U
    assert unsub.columns["left_at"] == base.__len__()
    cleaned = formats.resolve([*base, "CLEAN_TIME"])
    assert cleaned.file_state is not None and cleaned.file_state.state == B
    assert "CLEAN_TIME" in cleaned.to_json()["file_state"]  # type: ignore[operator]


def test_detection_needs_enough_distinctive_headers() -> None:
    assert formats.detect(["email", "plan"]).key == "generic"  # one Substack header is not enough
    assert formats.detect(["email", "plan", "expiry"]).key == "substack"
    assert formats.detect(["email", "joined"]).key == "sendy"
    assert formats.detect(["email", "uuid"]).key == "generic"
    assert formats.detect(["email", "uuid", "attribs"]).key == "listmonk"
    # The most distinctive headers win: Ghost's two against Sendy's one.
    assert formats.detect(["email", "joined", "labels", "note"]).key == "ghost"


def test_map_parses_pairs_keeps_commas_in_headers_and_refuses_unknown_fields() -> None:
    assert formats.parse_map(["email=E-Mail, Work,first_name = Vorname", " tags= "]) == {
        "email": "E-Mail, Work",
        "first_name": "Vorname",
        "tags": "",
    }
    assert formats.parse_map([]) == {}
    assert formats.parse_map([" ", ""]) == {}
    for bad in (["colour=x"], ["email"], ["paused=x"]):
        with pytest.raises(formats.MappingError, match="expected FIELD=HEADER"):
            formats.parse_map(bad)


def test_an_override_moves_removes_or_refuses_a_column() -> None:
    row = ["Mail", "Nom", "Tags"]
    mapping = formats.resolve(row, None, {"name": "nom", "tags": ""})
    assert mapping.columns == {"email": 0, "name": 1}
    with pytest.raises(
        formats.MappingError,
        match=r"--map name='Nope': no such column \(found 'Mail', 'Nom', 'Tags'\)",
    ):
        formats.resolve(row, None, {"name": "Nope"})
    with pytest.raises(formats.MappingError, match="no email column in the header"):
        formats.resolve(row, None, {"email": ""})
    with pytest.raises(formats.MappingError, match=r"found 'a', 'b'\); name one 'email'"):
        formats.resolve(["a", " ", "b"])
    with pytest.raises(formats.MappingError, match="found nothing"):
        formats.resolve([" "])


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("true", True),
        ("YES", True),
        (" 1 ", True),
        ("y", True),
        ("t", True),
        ("on", True),
        ("x", True),
        ("false", False),
        ("No", False),
        ("0", False),
        ("n", False),
        ("f", False),
        ("off", False),
        ("", None),
        ("maybe", None),
        ("2024-01-01", None),
    ],
)
def test_flags(cell: str, expected: bool | None) -> None:
    assert formats.is_true(cell) is expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("2023-01-05 10:02:11", datetime(2023, 1, 5, 10, 2, 11, tzinfo=UTC)),
        ("2023-01-05T10:02:11.000Z", datetime(2023, 1, 5, 10, 2, 11, tzinfo=UTC)),
        ("2023-01-05T12:02:11+02:00", datetime(2023, 1, 5, 10, 2, 11, tzinfo=UTC)),
        ("2020-01-01 00:00:00 UTC", datetime(2020, 1, 1, tzinfo=UTC)),
        ("2020-01-01 00:00:00 Z", datetime(2020, 1, 1, tzinfo=UTC)),
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("999999999", datetime(2001, 9, 9, 1, 46, 39, tzinfo=UTC)),
        ("12345678", None),  # too short to be a Unix time, not a date either
        ("", None),
        ("  ", None),
        ("05/01/2023", None),
        ("99999-01-01", None),
        ("2023-13-01", None),
    ],
)
def test_times(cell: str, expected: datetime | None) -> None:
    assert formats.parse_time(cell) == expected


@pytest.mark.parametrize(
    ("cell", "separator", "expected"),
    [
        ('"VIP","Early bird"', ",", ["VIP", "Early bird"]),
        ('"VIP", "Early bird"', ",", ["VIP", "Early bird"]),
        ("a,b, a ,,c", ",", ["a", "b", "c"]),
        ("a;b", ";", ["a", "b"]),
        ("a,b", ";", ["a,b"]),
        ("a;b,c", "", ["a", "b,c"]),
        ("a,b", "", ["a", "b"]),
        ("t\x00ag,  x  y ", ",", ["t ag", "x y"]),
        ("", ",", []),
        ("   ", ",", []),
    ],
)
def test_tags(cell: str, separator: str, expected: list[str]) -> None:
    assert formats.split_tags(cell, separator) == expected


def test_unix_times_have_nine_to_eleven_digits() -> None:
    assert formats.parse_time("10000000000") == datetime(2286, 11, 20, 17, 46, 40, tzinfo=UTC)
    assert formats.parse_time("100000000000") is None


def test_no_email_column_says_how_to_map_one() -> None:
    with pytest.raises(formats.MappingError) as refused:
        formats.resolve(["Name", "Phone"])
    assert str(refused.value) == (
        "no email column in the header (found 'Name', 'Phone'); name one 'email' or 'email "
        "address', or map one: --map email=HEADER (on the upload page: the Email select)"
    )
