"""The one base of every refusal a person can meet.

A domain refuses an action with a message that names what and why (an issue that is not a
draft, an address that is not one, a file with no email column). Each domain's error derives
from `Refused`, so the doors handle them alike: a route or command that does not catch its own
still answers with the message (the web app: 409, or 404 for `NotFound`; never a 500 or a
traceback), and nothing was written, since the transaction that raised it rolls back.
"""

from __future__ import annotations


class Refused(ValueError):
    """A request the service refuses; `str(exc)` is the sentence to show."""


class NotFound(Refused, LookupError):
    """What the request names does not exist (an issue id, a week)."""
