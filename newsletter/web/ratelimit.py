"""Attempt limits, per client address and per account (login; the sign-up form reuses them).

Counted in the database (`newsletter/limits.py`), so every web process and machine shares
one allowance: N processes used to give an attacker N times the tries. The check and the count
are one atomic step (`attempt`): concurrent requests cannot all slip under the limit before any
of them is counted. A login counts as a failure until it succeeds; a success forgets the
account's failures and gives the client address its try back.

An account is counted under its normalised address (`account_key`): NFKC, the service's own
email normalisation, case-folded, so "ａｄｍｉｎ@ｅｘａｍｐｌｅ.com" or "Admin@EXAMPLE.com"
cannot dodge a lock-out of admin@example.com.

Storage is bounded whatever strangers type: a key is stored as a 16-byte digest (a 900 KB
"address" costs what a short one does), each key keeps at most `limit` attempt times, and rows
whose window has passed are deleted by `newsletter maintenance` (daily from the scheduler).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from email_validator import validate_email

from newsletter import limits
from newsletter.db import transaction

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
# RFC 5321 bounds a path at 256 octets; anything longer is no address and is keyed by its start.
_LONGEST_ADDRESS = 320


def account_key(raw: str) -> str:
    """The address an attempt counts against: every spelling of one mailbox gives one key."""
    text = unicodedata.normalize("NFKC", raw[: _LONGEST_ADDRESS + 1]).strip()
    if len(text) <= _LONGEST_ADDRESS:
        # Not an address (EmailNotValidError, or an IDNA UnicodeError): keyed as typed.
        with contextlib.suppress(ValueError):
            text = validate_email(text, check_deliverability=False).normalized
    return unicodedata.normalize("NFKC", text).casefold()


def _digest(kind: str, value: str) -> str:
    # surrogatepass: a lone surrogate typed into the form is a key like any other, not a 500.
    data = f"{kind}:{value}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass
class AttemptLimiter:
    """Attempts counted per client address and per account name in a sliding window, shared
    by every process through the database: staff logins (account = the login name) and
    sign-ups (account = the address typed)."""

    window: float = WINDOW_SECONDS
    per_account: int = MAX_FAILURES_PER_ACCOUNT
    per_address: int = MAX_FAILURES_PER_ADDRESS
    # Wall-clock time: the counts are compared across processes and machines.
    clock: Callable[[], float] = time.time
    # Whose counts these are: each limiter keeps its own in the shared table. Without it the
    # sign-up form's posts counted as failed logins from that address (and signing up the
    # admin's address, as failures of the admin's account): a stranger locked the editors
    # out. "" is the staff login's (its keys as they always were).
    scope: str = ""

    def _kind(self, kind: str) -> str:
        return f"{self.scope}:{kind}" if self.scope else kind

    def _ip(self, address: str) -> limits.Key:
        return limits.Key(_digest(self._kind("ip"), address[:100]), self.per_address)

    def _account(self, account: str) -> limits.Key:
        return limits.Key(_digest(self._kind("acct"), account_key(account)), self.per_account)

    def _keys(self, address: str, account: str) -> list[limits.Key]:
        return [self._ip(address), self._account(account)]

    def attempt(self, address: str, account: str) -> int:
        """Count this attempt, or refuse it: seconds to wait (0: counted, go ahead)."""
        keys = self._keys(address, account)
        with transaction() as session:
            return limits.attempt(session, keys, self.window, self.clock())

    def succeeded(self, address: str, account: str) -> None:
        """The attempt was no failure: the account's failures are forgotten and the client
        address gets its try back."""
        ip, acct = self._ip(address), self._account(account)
        with transaction() as session:
            limits.forget(session, acct.digest)
            limits.give_back(session, ip, self.window, self.clock())

    def retry_after(self, address: str, account: str) -> int:
        """Seconds until an attempt may be made; 0 when it may be made now. Counts nothing."""
        with transaction() as session:
            return limits.retry_after(
                session, self._keys(address, account), self.window, self.clock()
            )

    def record_failure(self, address: str, account: str) -> None:
        with transaction() as session:
            limits.record(session, self._keys(address, account), self.window, self.clock())

    def record_success(self, account: str) -> None:
        with transaction() as session:
            limits.forget(session, self._account(account).digest)
