"""Login attempt limits, per client address and per account.

Kept in memory, on purpose: `newsletter serve` runs one process, a failed login then costs no
database write (an attacker cannot use the login form to load the database), and a restart
forgetting the counters only gives an attacker one more small window. Running several worker
processes would multiply the allowance by their number; the limits are set low enough that this
still stops guessing.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_SECONDS = 15 * 60
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20


@dataclass
class LoginLimiter:
    window: float = WINDOW_SECONDS
    per_account: int = MAX_FAILURES_PER_ACCOUNT
    per_address: int = MAX_FAILURES_PER_ADDRESS
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, address: str, account: str) -> int:
        """Seconds until a login may be tried again; 0 when it may be tried now."""
        with self._lock:
            now = self.clock()
            waits = [
                self._wait(f"ip:{address}", self.per_address, now),
                self._wait(f"acct:{account.strip().lower()}", self.per_account, now),
            ]
        return max(waits)

    def record_failure(self, address: str, account: str) -> None:
        with self._lock:
            now = self.clock()
            for key in (f"ip:{address}", f"acct:{account.strip().lower()}"):
                self._failures.setdefault(key, deque()).append(now)
            if len(self._failures) > 100_000:
                self._forget_old(now)

    def record_success(self, account: str) -> None:
        with self._lock:
            self._failures.pop(f"acct:{account.strip().lower()}", None)

    def _wait(self, key: str, limit: int, now: float) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < limit:
            return 0
        return max(1, int(times[0] + self.window - now) + 1)

    def _forget_old(self, now: float) -> None:
        stale = [k for k, t in self._failures.items() if not t or t[-1] <= now - self.window]
        for key in stale:
            del self._failures[key]
