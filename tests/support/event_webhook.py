"""SendGrid's Event Webhook, played back by the loopback Mail Send server ("talks back").

For each recipient of an accepted request `EventWebhook.schedule` plans what SendGrid would
report: `processed`, then an outcome (`delivered` by default; `bounce` of type bounce or
blocked, `deferred`, `dropped`, or `delivered` followed by `open` or `spamreport`), each event
carrying the request's custom args at its top level, an `sg_message_id` made of the request's
X-Message-Id plus a per-recipient suffix, and an `sg_event_id` of its own. A background thread
posts them to the given loopback URL as JSON arrays of up to `batch_size` events, signed the
way SendGrid signs (ECDSA P-256 / SHA-256 over the timestamp header's value followed by the raw
body, the DER signature base64 in X-Twilio-Email-Event-Webhook-Signature). Written from
SendGrid's documentation, not from the service's verifier, so the two can be held against
each other.

SendGrid's delivery rules are played too: at least once (a `duplicate_fraction` of events is
posted a second time, and a batch answered anything but 2xx is posted again, freshly signed, up
to `max_attempts`), late (each event waits a random time within `delay`) and out of order
(`shuffle`: each event of a recipient draws its own delay and every round of due events is
shuffled before it is cut into batches; without it a recipient's events keep their order).
`concurrency` senders post batches at once, as SendGrid does when several are ready.

Bounded: at most `max_pending` events wait (more are counted as `overflow`, not queued), an
event waits at most `delay[1]` seconds (plus as long again for a duplicate) and each POST
`timeout` seconds. `flush(timeout)` posts everything still waiting at once and returns when
all of it was posted; `wait_idle(timeout)` waits without hurrying anything. `stop()` (the
server's) DROPS whatever is still waiting, counted as `abandoned`, and waits for the batch in
flight: a test that wants every event posted calls `flush()` before the server stops.
"""

from __future__ import annotations

import base64
import heapq
import http.client
import itertools
import json
import queue
import random
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# SendGrid's header names (its "Getting started with the Event Webhook security features").
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
OUTCOMES = ("delivered", "bounce", "blocked", "deferred", "dropped", "open", "spamreport")
# What SendGrid writes in `reason` (bounces, drops) or `response` (deferrals) when nobody asks
# for something else.
DEFAULT_REASONS = {
    "bounce": "550 5.1.1 The email account that you tried to reach does not exist.",
    "blocked": "554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org",
    "deferred": "451 4.7.1 Please try again later",
    "dropped": "Bounced Address",
}
OPEN_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)


@dataclass(frozen=True)
class Outcome:
    """What becomes of one recipient after `processed`.

    kind: one of OUTCOMES ("blocked" is SendGrid's event=bounce, type=blocked). reason: the
    bounce's or drop's `reason` (e.g. "Unsubscribed Address", "Spam Reporting Address") or a
    deferral's `response`. machine: an open's `sg_machine_open` (None: drawn with
    `machine_open_fraction`).
    """

    kind: str
    reason: str | None = None
    machine: bool | None = None

    def __post_init__(self) -> None:
        if self.kind not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.kind!r}: one of {', '.join(OUTCOMES)}")


@dataclass
class TalkBack:
    """The settings of a talking-back server (read again at each request and each round, so a
    test may change them between sends)."""

    url: str
    private_key: ec.EllipticCurvePrivateKey
    batch_size: int = 500
    # Each event is posted this many seconds (uniform between the two) after the request.
    delay: tuple[float, float] = (0.0, 0.0)
    duplicate_fraction: float = 0.0
    shuffle: bool = False
    # address (any case) -> outcome, before any fraction is drawn.
    outcomes: Mapping[str, Outcome | str] = field(default_factory=dict)
    # outcome kind -> share of the other recipients (the rest: delivered).
    fractions: Mapping[str, float] = field(default_factory=dict)
    machine_open_fraction: float = 0.5
    seed: int | None = None
    max_pending: int = 100_000
    max_attempts: int = 3
    retry_backoff: float = 0.2
    timeout: float = 10.0
    # After the first event falls due, wait this long for more before posting (SendGrid
    # batches by time and size).
    gather: float = 0.02
    # POSTs in flight at once (each batch still goes whole, retries included, by one sender).
    concurrency: int = 1
    # The last this many POSTs, and the first this many planned events and outcomes, are
    # kept for the test to read (counts in stats() are never capped).
    keep_posts: int = 1000
    keep_events: int = 100_000


@dataclass(frozen=True)
class PostedBatch:
    """One POST as it went out: a test can verify its signature or replay it altered."""

    body: bytes
    timestamp: str
    signature: str
    events: int
    attempt: int
    tampered: bool
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    response: bytes
    error: str | None = None


def check_loopback(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an http:// URL on this machine; anything else is refused."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError(f"the event webhook posts only to http://127.0.0.1 or localhost: {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, parts.port or 80, path


def sign(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """SendGrid's signature: ECDSA P-256 with SHA-256 over timestamp + body, DER, base64."""
    der = private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(der).decode()


@dataclass(order=True)
class _Due:
    due: float
    seq: int
    event: dict[str, Any] = field(compare=False)
    copy: bool = field(compare=False, default=False)


class EventWebhook:
    """The poster: `schedule()` after each accepted request; one background thread posts."""

    def __init__(self, config: TalkBack) -> None:
        self._host, self._port, self._path = check_loopback(config.url)
        self.config = config
        self._rng = random.Random(config.seed)  # plans: the same seed, the same outcomes
        self._shuffle_rng = random.Random(config.seed)  # the poster thread's own
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._pending: list[_Due] = []
        self._in_flight = 0
        self._flushing = False
        self._stopping = False
        self._tamper = 0
        self._thread = threading.Thread(
            target=self._run, name="sendgrid-event-webhook", daemon=True
        )
        # Cut batches wait here for a sender; `concurrency` senders post at once, as SendGrid
        # does with more than one batch ready.
        self._batches: queue.Queue[list[dict[str, Any]] | None] = queue.Queue()
        self._senders = [
            threading.Thread(target=self._send, name=f"sendgrid-event-webhook-{n}", daemon=True)
            for n in range(max(1, config.concurrency))
        ]
        self.posts: deque[PostedBatch] = deque(maxlen=config.keep_posts)
        # Every event planned once (duplicates are copies of these), in planning order.
        self.events: list[dict[str, Any]] = []  # up to keep_events
        self.outcomes: dict[str, Outcome] = {}  # address -> what was planned for it
        self._scheduled: Counter[str] = Counter()
        self._posted: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._counts: Counter[str] = Counter()

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> EventWebhook:
        self._thread.start()
        for sender in self._senders:
            sender.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Drop what is still waiting (counted as `abandoned`); finish the batch in flight."""
        with self._cond:
            self._stopping = True
            self._counts["abandoned"] += len(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for _ in self._senders:
            self._batches.put(None)
        for thread in (self._thread, *self._senders):
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def flush(self, timeout: float = 30.0) -> None:
        """Post everything waiting now, delays cut short; TimeoutError if not done in time."""
        with self._cond:
            self._flushing = True
            self._cond.notify_all()
        if not self.wait_idle(timeout):
            raise TimeoutError(f"event webhook not idle after {timeout}s: {self.stats()}")

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once nothing waits and nothing is in flight (False after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.5))
            self._flushing = False
            return True

    def tamper_next(self, times: int = 1) -> None:
        """Alter the body of the next `times` POSTs after signing (the service must answer
        400); the retry of each goes out intact, as SendGrid would post it."""
        with self._cond:
            self._tamper += times

    # --- planning -----------------------------------------------------------------------

    def schedule(self, message_id: str, payload: dict[str, Any]) -> None:
        """Plan the events of one request SendGrid accepted (none in sandbox mode: SendGrid
        validates such a request and delivers nothing)."""
        sandbox = ((payload.get("mail_settings") or {}).get("sandbox_mode") or {}).get("enable")
        if sandbox is True:
            return
        config = self.config
        now = time.time()
        clock = time.monotonic()
        global_args = payload.get("custom_args") or {}
        categories = payload.get("categories")
        planned: list[_Due] = []
        chosen = {address.lower(): outcome for address, outcome in config.outcomes.items()}
        with self._cond:
            number = 0
            for personalization in payload.get("personalizations") or []:
                args = {**global_args, **(personalization.get("custom_args") or {})}
                for kind in ("to", "cc", "bcc"):
                    for address in personalization.get(kind) or []:
                        email = str(address["email"])
                        outcome = self._outcome_for(email, chosen)
                        suffix = f"filter{number % 9999 + 1:04d}.{secrets.token_hex(4)}.0"
                        common = {
                            **args,
                            "email": email,
                            "smtp-id": f"<{message_id}@ismtpd0001p1.sendgrid.net>",
                            "sg_message_id": f"{message_id}.{suffix}",
                        }
                        if categories:
                            common["category"] = list(categories)
                        planned.extend(self._plan(common, outcome, now, clock))
                        number += 1
            room = config.max_pending - len(self._pending)
            if len(planned) > room:
                self._counts["overflow"] += len(planned) - max(room, 0)
                planned = planned[: max(room, 0)]
            for item in planned:
                heapq.heappush(self._pending, item)
                if item.copy:
                    self._counts["duplicates"] += 1
                else:
                    if len(self.events) < config.keep_events:
                        self.events.append(item.event)
                    self._scheduled[item.event["event"]] += 1
            self._cond.notify_all()

    def _outcome_for(self, email: str, chosen: Mapping[str, Outcome | str]) -> Outcome:
        picked = chosen.get(email.lower())
        if picked is None:
            draw = self._rng.random()
            picked = "delivered"
            for kind, share in self.config.fractions.items():
                if draw < share:
                    picked = kind
                    break
                draw -= share
        outcome = Outcome(picked) if isinstance(picked, str) else picked
        if len(self.outcomes) < self.config.keep_events:
            self.outcomes[email.lower()] = outcome
        return outcome

    def _plan(
        self, common: dict[str, Any], outcome: Outcome, now: float, clock: float
    ) -> list[_Due]:
        config = self.config
        kinds: list[tuple[str, dict[str, Any]]] = [("processed", {})]
        reason = outcome.reason or DEFAULT_REASONS.get(outcome.kind)
        if outcome.kind in ("delivered", "open", "spamreport"):
            kinds.append(("delivered", {"response": "250 2.0.0 OK", "ip": "168.1.1.1", "tls": 1}))
        if outcome.kind == "bounce":
            kinds.append(
                (
                    "bounce",
                    {
                        "type": "bounce",
                        "reason": reason,
                        "status": "5.1.1",
                        "bounce_classification": "Invalid Address",
                    },
                )
            )
        elif outcome.kind == "blocked":
            kinds.append(
                (
                    "bounce",
                    {
                        "type": "blocked",
                        "reason": reason,
                        "status": "5.7.1",
                        "bounce_classification": "Reputation",
                    },
                )
            )
        elif outcome.kind == "deferred":
            kinds.append(("deferred", {"response": reason, "attempt": "1"}))
        elif outcome.kind == "dropped":
            kinds.append(("dropped", {"reason": reason, "status": "5.0.0"}))
        elif outcome.kind == "open":
            machine = outcome.machine
            if machine is None:
                machine = self._rng.random() < config.machine_open_fraction
            kinds.append(
                (
                    "open",
                    {"useragent": OPEN_USER_AGENT, "ip": "66.249.84.1", "sg_machine_open": machine},
                )
            )
        elif outcome.kind == "spamreport":
            kinds.append(("spamreport", {}))
        low, high = config.delay
        planned: list[_Due] = []
        in_order = clock + self._rng.uniform(low, high)
        for step, (name, extra) in enumerate(kinds):
            event = {
                **common,
                **extra,
                "event": name,
                "timestamp": int(now) + step,
                "sg_event_id": secrets.token_urlsafe(16),
            }
            if config.shuffle:
                due = clock + self._rng.uniform(low, high)
            else:
                # A recipient's events keep their order; a tie is broken by the sequence.
                in_order = max(in_order, clock + self._rng.uniform(low, high))
                due = in_order
            planned.append(_Due(due, next(self._seq), event))
            if self._rng.random() < config.duplicate_fraction:
                copy_due = due + self._rng.uniform(low, high) + 0.001
                planned.append(_Due(copy_due, next(self._seq), dict(event), copy=True))
        return planned

    # --- posting ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    if self._pending and (
                        self._flushing or self._pending[0].due <= time.monotonic()
                    ):
                        break
                    wait = self._pending[0].due - time.monotonic() if self._pending else None
                    self._cond.wait(wait)
                flushing = self._flushing
            if self.config.gather and not flushing:
                time.sleep(self.config.gather)
            with self._cond:
                now = time.monotonic()
                due: list[_Due] = []
                while self._pending and (self._flushing or self._pending[0].due <= now):
                    due.append(heapq.heappop(self._pending))
                self._in_flight += len(due)
            config = self.config
            if config.shuffle:
                self._shuffle_rng.shuffle(due)
            size = max(1, config.batch_size)
            with self._cond:
                # Under the lock: either these batches are queued before stop()'s sentinels
                # (and the senders count them abandoned) or they are counted here.
                if self._stopping:
                    self._counts["abandoned"] += len(due)
                    self._in_flight -= len(due)
                    self._cond.notify_all()
                    return
                for start in range(0, len(due), size):
                    self._batches.put([d.event for d in due[start : start + size]])

    def _send(self) -> None:
        while True:
            batch = self._batches.get()
            if batch is None:
                return
            try:
                self._deliver(batch)
            finally:
                with self._cond:
                    self._in_flight -= len(batch)
                    self._cond.notify_all()

    def _deliver(self, events: list[dict[str, Any]]) -> None:
        """Post one batch, again (freshly signed) after anything but a 2xx, up to max_attempts."""
        config = self.config
        body = json.dumps(events).encode()
        for attempt in range(1, config.max_attempts + 1):
            if self._stopping:
                self._counts["abandoned"] += len(events)
                return
            status = self._post_once(body, events, attempt)
            if status is not None and 200 <= status < 300:
                with self._cond:
                    self._counts["batches"] += 1
                    self._posted.update(e["event"] for e in events)
                return
            with self._cond:
                self._counts["failed_posts"] += 1
            if attempt < config.max_attempts:
                with self._cond:
                    self._counts["retries"] += 1
                time.sleep(config.retry_backoff * attempt)
        with self._cond:
            self._counts["lost"] += len(events)

    def _post_once(self, body: bytes, events: list[dict[str, Any]], attempt: int) -> int | None:
        config = self.config
        timestamp = str(int(time.time()))
        signature = sign(config.private_key, timestamp, body)
        with self._cond:
            tampered = self._tamper > 0
            if tampered:
                self._tamper -= 1
        sent = _tampered(body) if tampered else body
        status: int | None = None
        response = b""
        error: str | None = None
        connection = http.client.HTTPConnection(self._host, self._port, timeout=config.timeout)
        try:
            connection.request(
                "POST",
                self._path,
                body=sent,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "SendGrid Event API",
                    SIGNATURE_HEADER: signature,
                    TIMESTAMP_HEADER: timestamp,
                },
            )
            answer = connection.getresponse()
            status = answer.status
            response = answer.read()[:4000]
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
        with self._cond:
            self._counts["posts"] += 1
            self._statuses["none" if status is None else str(status)] += 1
            self.posts.append(
                PostedBatch(
                    sent,
                    timestamp,
                    signature,
                    len(events),
                    attempt,
                    tampered,
                    status,
                    response,
                    error,
                )
            )
        return status

    # --- what was posted ----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """scheduled: unique events planned, per type; posted: event copies in batches answered
        2xx, per type; batches: POSTs answered 2xx; posts: every POST; duplicates: extra copies
        planned; failed_posts, retries, lost (given up), abandoned (dropped at stop), overflow
        (past max_pending); statuses: answers by status ("none": no answer); pending now."""
        with self._cond:
            return {
                "scheduled": dict(self._scheduled),
                "posted": dict(self._posted),
                "batches": self._counts["batches"],
                "posts": self._counts["posts"],
                "duplicates": self._counts["duplicates"],
                "failed_posts": self._counts["failed_posts"],
                "retries": self._counts["retries"],
                "lost": self._counts["lost"],
                "abandoned": self._counts["abandoned"],
                "overflow": self._counts["overflow"],
                "statuses": dict(self._statuses),
                "pending": len(self._pending) + self._in_flight,
            }


def _tampered(body: bytes) -> bytes:
    """The same batch with one event's timestamp moved by a second: still valid JSON."""
    events = json.loads(body)
    events[0]["timestamp"] = int(events[0].get("timestamp", 0)) + 1
    return json.dumps(events).encode()
