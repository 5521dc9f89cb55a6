"""SendGrid's Event Webhook payload, normalised into the one event model (TrackingEvent).

Each SendGrid event becomes a `NormalisedEvent`: our `EventType`, SendGrid's own string kept
in `provider_type`, the raw object kept whole. Types we do not know are stored as UNKNOWN, never
refused: SendGrid adds event types, and a batch must not fail because of one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from newsletter.numbers import ascii_int
from newsletter.sending.models import MAX_DELIVERY_ID
from newsletter.tracking.models import EventType

_DETAIL_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class NormalisedEvent:
    type: EventType
    provider_type: str
    provider_event_id: str
    delivery_id: int | None
    occurred_at: datetime
    machine: bool
    user_agent: str | None
    detail: str | None
    raw: dict[str, Any]

    @property
    def hard_bounce(self) -> bool:
        """A permanent failure: the address must be suppressed. ("blocked" is temporary.)"""
        return self.type is EventType.BOUNCED and self.provider_type == "bounce"


class SendGridEvents:
    """The mapping from SendGrid's `event` strings to ours."""

    EVENT_TYPES: ClassVar[dict[str, EventType]] = {
        "processed": EventType.PROCESSED,
        "delivered": EventType.DELIVERED,
        "deferred": EventType.DEFERRED,
        "bounce": EventType.BOUNCED,
        # Older accounts send blocks as their own event rather than bounce/type=blocked.
        "blocked": EventType.BOUNCED,
        "dropped": EventType.DROPPED,
        "open": EventType.OPENED,
        "click": EventType.CLICKED,
        "spamreport": EventType.COMPLAINED,
        "unsubscribe": EventType.UNSUBSCRIBED,
        "group_unsubscribe": EventType.UNSUBSCRIBED,
        "group_resubscribe": EventType.RESUBSCRIBED,
    }

    @classmethod
    def normalise(cls, raw: dict[str, Any], *, received_at: datetime) -> NormalisedEvent:
        name = str(raw.get("event", ""))[:64]
        event_type = cls.EVENT_TYPES.get(name, EventType.UNKNOWN)
        provider_type = name
        if name == "bounce" and raw.get("type") == "blocked":
            # SendGrid reports a block (temporary refusal) as event=bounce, type=blocked.
            provider_type = "blocked"
        return NormalisedEvent(
            type=event_type,
            provider_type=provider_type,
            provider_event_id=_event_id(raw),
            delivery_id=_delivery_id(raw),
            occurred_at=_timestamp(raw.get("timestamp")) or received_at,
            # SendGrid flags opens it attributes to Apple MPP and similar prefetchers.
            machine=event_type is EventType.OPENED and raw.get("sg_machine_open") is True,
            user_agent=_text(raw.get("useragent")),
            detail=_detail(raw),
            raw=raw,
        )


def _event_id(raw: dict[str, Any]) -> str:
    """sg_event_id when SendGrid gives one; otherwise a digest of the event itself, so a
    redelivered legacy event is still recognised as the same one."""
    given = raw.get("sg_event_id")
    if isinstance(given, str) and given:
        return given[:128]
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _delivery_id(raw: dict[str, Any]) -> int | None:
    # custom_args arrive as top-level keys of each event, always as strings; the webhook is
    # account-wide, so other mail's custom args (any number at all) arrive too.
    value = raw.get("delivery_id")
    if isinstance(value, str):
        value = ascii_int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 < value <= MAX_DELIVERY_ID else None
    return None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return str(value)[:_DETAIL_LIMIT] if value not in (None, "") else None


def _detail(raw: dict[str, Any]) -> str | None:
    parts = [
        str(raw[key])
        for key in ("status", "reason", "response", "url", "bounce_classification")
        if raw.get(key) not in (None, "")
    ]
    return " | ".join(parts)[:_DETAIL_LIMIT] or None
