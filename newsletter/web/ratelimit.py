"""Attempt limits, per client address and per account (login; the sign-up form reuses them).

Kept in memory, on purpose: `newsletter serve` runs one process, a failed login then costs no
database write (an attacker cannot use the login form to load the database), and a restart
forgetting the counters only gives an attacker one more small window. Running several worker
processes would multiply the allowance by their number; the limits are set low enough that this
still stops guessing.

An account is counted under its normalised address (`account_key`): NFKC, the service's own
email normalisation, case-folded, so "ａｄｍｉｎ@ｅｘａｍｐｌｅ.com" or "Admin@EXAMPLE.com"
cannot dodge a lock-out of admin@example.com.

Memory is bounded whatever strangers type: a key is kept as a 16-byte digest (a 900 KB
"address" costs what a short one does), each key keeps at most `limit` attempt times, and at
most `max_keys` keys are kept, the least recently counted dropped first. Dropping one early
only gives its owner a fresh allowance; filling the table to push out one victim's key needs
thousands of client addresses, each itself limited.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import threading
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from email_validator import validate_email

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
MAX_KEYS = 50_000
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


def _digest(kind: str, value: str) -> bytes:
    data = f"{kind}:{value}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass
class AttemptLimiter:
    """Failed attempts counted per client address and per account name in a sliding window:
    staff logins (account = the login name) and sign-ups (account = the address typed)."""

    window: float = WINDOW_SECONDS
    per_account: int = MAX_FAILURES_PER_ACCOUNT
    per_address: int = MAX_FAILURES_PER_ADDRESS
    clock: Callable[[], float] = time.monotonic
    max_keys: int = MAX_KEYS
    _failures: OrderedDict[bytes, deque[float]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _keys(self, address: str, account: str) -> list[tuple[bytes, int]]:
        return [
            (_digest("ip", address[:100]), self.per_address),
            (_digest("acct", account_key(account)), self.per_account),
        ]

    def retry_after(self, address: str, account: str) -> int:
        """Seconds until a login may be tried again; 0 when it may be tried now."""
        keys = self._keys(address, account)
        with self._lock:
            now = self.clock()
            return max(self._wait(key, limit, now) for key, limit in keys)

    def record_failure(self, address: str, account: str) -> None:
        keys = self._keys(address, account)
        with self._lock:
            now = self.clock()
            for key, limit in keys:
                times = self._failures.get(key)
                if times is None:
                    times = self._failures[key] = deque(maxlen=limit)
                else:
                    self._failures.move_to_end(key)
                times.append(now)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def record_success(self, account: str) -> None:
        key = _digest("acct", account_key(account))
        with self._lock:
            self._failures.pop(key, None)

    def stored_bytes(self) -> int:
        """What the counters hold in memory (keys, time lists, the table), for the bound tests."""
        with self._lock:
            held = sys.getsizeof(self._failures)
            for key, times in self._failures.items():
                held += sys.getsizeof(key) + sys.getsizeof(times)
                held += sum(sys.getsizeof(t) for t in times)
            return held

    def _wait(self, key: bytes, limit: int, now: float) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < limit:
            return 0
        return max(1, int(times[0] + self.window - now) + 1)
