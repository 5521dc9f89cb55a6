"""A segment's rule: what it keeps, checked once at the door (CLI, web form, API) and stored as
JSON. Every condition given must hold (AND); within one condition, any of its values (OR).
No condition at all: the whole list.

| condition | keeps |
|---|---|
| `statuses` | people in any of these states (active, pending, unsubscribed, bounced, complained) |
| `topics` | people who chose any of these topics (someone who chose none reads every topic, and is not kept: they chose nothing) |
| `tags` | people imported with any of these tags or groups (case aside) |
| `joined_after` / `joined_before` | people who joined on or after / before this day (NEWSLETTER_TIMEZONE) |
| `sources` | people whose source is this or starts with it and a colon (`import` keeps `import:mailchimp:list.csv`) |
| `engaged_in_last` | people who clicked or voted, as a person, in at least one of the last N sent issues |
| `not_engaged_in_last` | the others: no click and no vote in the last N sent issues (new people too) |
| `never_opened` | people who never opened an issue as a person (a mail client's proxy open is a machine's) |
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from newsletter.errors import Refused
from subscribers.models import SubscriberStatus

MAX_ISSUES = 52
MAX_VALUES = 50
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

Name = Annotated[str, Field(min_length=1, max_length=100)]
Source = Annotated[str, Field(min_length=1, max_length=64)]


class RuleError(Refused):
    """A rule that cannot be kept: what is wrong, and where."""


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    statuses: list[SubscriberStatus] = Field(default_factory=list, max_length=5)
    topics: list[Name] = Field(default_factory=list, max_length=MAX_VALUES)
    tags: list[Name] = Field(default_factory=list, max_length=MAX_VALUES)
    joined_after: date | None = None
    joined_before: date | None = None
    sources: list[Source] = Field(default_factory=list, max_length=20)
    engaged_in_last: int | None = Field(default=None, ge=1, le=MAX_ISSUES, strict=True)
    not_engaged_in_last: int | None = Field(default=None, ge=1, le=MAX_ISSUES, strict=True)
    never_opened: bool = Field(default=False, strict=True)

    @field_validator("topics", "tags", "sources")
    @classmethod
    def _clean(cls, values: list[str]) -> list[str]:
        kept: list[str] = []
        seen: set[str] = set()
        for value in values:
            if _UNSTORABLE.search(value):
                raise ValueError("contains a NUL or a lone surrogate character")
            text = " ".join(value.split())
            if not text:
                raise ValueError("a blank name")
            if text.casefold() not in seen:
                seen.add(text.casefold())
                kept.append(text)
        return kept

    @field_validator("statuses")
    @classmethod
    def _once(cls, values: list[SubscriberStatus]) -> list[SubscriberStatus]:
        return sorted(set(values), key=list(SubscriberStatus).index)

    @model_validator(mode="after")
    def _coherent(self) -> Rule:
        if self.joined_after and self.joined_before and self.joined_after >= self.joined_before:
            raise ValueError("joined_after must be a day before joined_before")
        return self

    def to_json(self) -> dict[str, Any]:
        """Only the conditions given, in a stable order (what is stored and shown)."""
        return self.model_dump(mode="json", exclude_defaults=True)

    def describe(self) -> str:
        """One line for people: "active; topics Video or Design Tools; clicked or voted in the
        last 4 issues"."""
        parts: list[str] = []
        if self.statuses:
            parts.append(" or ".join(s.value for s in self.statuses))
        if self.topics:
            parts.append("topics " + " or ".join(self.topics))
        if self.tags:
            parts.append("tagged " + " or ".join(self.tags))
        if self.joined_after:
            parts.append(f"joined on or after {self.joined_after.isoformat()}")
        if self.joined_before:
            parts.append(f"joined before {self.joined_before.isoformat()}")
        if self.sources:
            parts.append("from " + " or ".join(self.sources))
        if self.engaged_in_last:
            parts.append(f"clicked or voted in the last {_issues(self.engaged_in_last)}")
        if self.not_engaged_in_last:
            parts.append(f"no click or vote in the last {_issues(self.not_engaged_in_last)}")
        if self.never_opened:
            parts.append("never opened an issue")
        return "; ".join(parts) or "everyone on the list"


def _issues(n: int) -> str:
    return "issue" if n == 1 else f"{n} issues"


def parse(raw: Any, *, where: str = "rule") -> Rule:
    """A rule from JSON-like data (a stored rule, an API body, the CLI's options), or a
    RuleError naming the first thing wrong: "rule.engaged_in_last: at most 52"."""
    try:
        return Rule.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join([where, *(str(p) for p in first["loc"])]) if first["loc"] else where
        raise RuleError(f"{place}: {_message(first)}") from None


def _message(error: Any) -> str:
    message = str(error["msg"])
    kind = error.get("type", "")
    context = error.get("ctx") or {}
    if kind == "less_than_equal":
        return f"at most {context.get('le')}"
    if kind == "greater_than_equal":
        return f"at least {context.get('ge')}"
    if kind == "extra_forbidden":
        return "not a condition (statuses, topics, tags, joined_after, joined_before, sources, engaged_in_last, not_engaged_in_last, never_opened)"
    if kind == "enum":
        return "not a status (" + ", ".join(s.value for s in SubscriberStatus) + ")"
    return message.removeprefix("Value error, ")
