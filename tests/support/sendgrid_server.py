"""A SendGrid-compatible Mail Send server on loopback, for tests and benchmarks.

It enforces what SendGrid documents for POST /v3/mail/send (the official OpenAPI schema in
shared/sendgrid-oai plus the rules the schema cannot say: 1,000 recipients per request, each
address once per request across to/cc/bcc, string-only substitutions and custom_args, 10,000
bytes of custom_args, text/plain before text/html), answers 202 with an X-Message-Id, and
records what it accepted so a test can prove nobody got an issue twice, with the address each
request came from (`peer`: which machine sent it). `listen_also(host)` serves one more address
on the same port (a network namespace's side of a veth pair); `admit(peer, payload, connection)`
is where a subclass decides per machine (bench/hosts.py holds one host's requests).

Faults are injected per request: a status (429 with X-RateLimit-Reset, 5xx, 401…), a slow
answer, a dropped connection, or a 400 naming chosen addresses the way SendGrid does.

Talking back (`talk_back=TalkBack(url, private_key, …)`, tests/support/event_webhook.py): after
each accepted request the server posts, per recipient, the signed Event Webhook batches SendGrid
would (`processed`, then `delivered`, a bounce, a deferral, a drop, an open or a spam report),
late, duplicated and out of order, to a loopback URL; `server.webhook` flushes, waits and
counts. Stopping the server drops the events still waiting (call `server.webhook.flush()` first).

Run alone (benchmarks): `python -m tests.support.sendgrid_server --port 0`; it prints
`listening http://127.0.0.1:PORT` and serves `GET /_stats` (counts as JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import secrets
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.event_webhook import EventWebhook, TalkBack

SCHEMA_FILE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "sendgrid-oai" / "tsg_mail_v3.json"
)
REQUEST_SCHEMA_POINTER = "#/components/requestBodies/PostMailSend/content/application~1json/schema"
MAX_RECIPIENTS = 1000
CUSTOM_ARGS_MAX_BYTES = 10_000
# Headers SendGrid will not let a request set (its documentation lists them).
RESERVED_HEADERS = {
    "x-sg-id",
    "x-sg-eid",
    "received",
    "dkim-signature",
    "content-type",
    "content-transfer-encoding",
    "to",
    "from",
    "subject",
    "reply-to",
    "cc",
    "bcc",
}
_ADDRESS = re.compile(r"^[^@\s<>\",;]+@[^@\s<>\",;]+\.[^@\s<>\",;]+$")


def load_request_validator() -> Any:
    """A jsonschema validator for the Mail Send request body, from the official spec."""
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    document = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    # The body schema's $refs point into the spec's own components, so the spec is the root.
    schema = {**document, "$ref": REQUEST_SCHEMA_POINTER}
    return Draft202012Validator(schema)


class Reject(Exception):
    """A request SendGrid would refuse: status and its errors array."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else str(status))
        self.status = status
        self.errors = errors


def _error(message: str, field_name: str | None = None) -> dict[str, Any]:
    return {"message": message, "field": field_name, "help": None}


@dataclass
class Fault:
    """What the server does to one request instead of (or before) accepting it."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    delay: float = 0.0
    drop: bool = False  # close the connection without answering
    accept: bool = False  # the request is taken (recorded) before the delay or the drop
    # Taken, then answered only once this is set (a test decides when, e.g. after a kill).
    hold: threading.Event | None = None


@dataclass(frozen=True)
class AcceptedRecipient:
    email: str
    issue_id: str | None
    delivery_id: str | None
    token: str | None
    headers: dict[str, str]
    peer: str | None = None  # the IP address the request came from (which machine sent it)


@dataclass
class AcceptedRequest:
    message_id: str
    payload: dict[str, Any] | None
    recipients: list[AcceptedRecipient]
    peer: str | None = None


class SendGridServer:
    """Start with `with SendGridServer() as server:`; point SENDGRID_API_HOST at `server.url`."""

    def __init__(
        self,
        *,
        api_key: str = "SG.test-key",
        host: str = "127.0.0.1",
        port: int = 0,
        validate_schema: bool = True,
        record: bool = True,
        keep_payloads: bool = False,
        talk_back: TalkBack | None = None,
    ) -> None:
        self.api_key = api_key
        self.validate_schema = validate_schema
        self.record = record
        self.keep_payloads = keep_payloads
        self.validator = load_request_validator() if validate_schema else None
        self.lock = threading.Lock()
        self.faults: deque[Fault] = deque()
        # address -> SendGrid's message: any request naming the address gets a 400 for it.
        self.bad_addresses: dict[str, str] = {}
        self.forbidden = False
        # Every accepted request is answered this many seconds late (a realistic round trip).
        self.latency = 0.0
        self.accepted: list[AcceptedRequest] = []
        self.received: Counter[tuple[str | None, str]] = Counter()
        self.requests = 0
        self.statuses: Counter[int] = Counter()
        self.accepted_recipients = 0
        self.duplicates = 0
        # Refuses a URL off this machine before anything listens.
        self.webhook = EventWebhook(talk_back) if talk_back is not None else None
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        # More addresses on the same port (`listen_also`), each served by its own thread.
        self._also: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
        # Answers still held (Fault.hold) are let go when the server stops.
        self._holds: set[threading.Event] = set()

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SendGridServer:
        if self.webhook is not None:
            self.webhook.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def listen_also(self, host: str) -> str:
        """Serve on another address too, on the same port (a machine reaching this one over
        its own network); returns the URL to give that machine."""
        port = self._httpd.server_address[1]
        httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        self._also.append((httpd, thread))
        return f"http://{host}:{port}"

    def stop(self) -> None:
        with self.lock:
            holds = list(self._holds)
        for hold in holds:
            hold.set()
        for httpd, _ in self._also:
            httpd.shutdown()
            httpd.server_close()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self.webhook is not None:
            # What still waits is dropped (counted as abandoned): flush() first to post it.
            self.webhook.stop()

    def serve_forever(self) -> None:
        if self.webhook is not None:
            self.webhook.start()
        self._httpd.serve_forever()

    def __enter__(self) -> SendGridServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- fault injection ----------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        body = body or {"errors": [_error(f"injected {status}")]}
        with self.lock:
            for _ in range(times):
                self.faults.append(Fault(status=status, headers=dict(headers or {}), body=body))

    def rate_limit_next(self, times: int = 1, *, reset_in: float = 1.0) -> None:
        """429 with X-RateLimit-Reset (a Unix time) `reset_in` seconds from each answer."""
        with self.lock:
            for _ in range(times):
                self.faults.append(Fault(status=429, headers={"X-RateLimit-Reset": f"+{reset_in}"}))

    def slow_next(self, delay: float, times: int = 1) -> None:
        """Take the request, then answer 202 only after `delay` seconds."""
        with self.lock:
            for _ in range(times):
                self.faults.append(Fault(delay=delay, accept=True))

    def drop_next(self, times: int = 1, *, accepted: bool = False) -> None:
        """Close the connection without an answer, having taken the request or not."""
        with self.lock:
            for _ in range(times):
                self.faults.append(Fault(drop=True, accept=accepted))

    def reject_addresses(self, addresses: dict[str, str]) -> None:
        with self.lock:
            self.bad_addresses.update({a.lower(): m for a, m in addresses.items()})

    # --- what was accepted --------------------------------------------------------------

    def recipients(self) -> Iterator[AcceptedRecipient]:
        with self.lock:
            requests = list(self.accepted)
        for request in requests:
            yield from request.recipients

    def stats(self) -> dict[str, Any]:
        webhook = self.webhook.stats() if self.webhook is not None else None
        with self.lock:
            return {
                **({"webhook": webhook} if webhook is not None else {}),
                "requests": self.requests,
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "accepted_requests": sum(v for k, v in self.statuses.items() if k == 202),
                "accepted_recipients": self.accepted_recipients,
                "duplicates": self.duplicates,
            }

    # --- the Mail Send endpoint ---------------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def admit(self, peer: str, payload: Any, connection: socket.socket) -> Fault | None:
        """What becomes of one authorised request, knowing who sent it (`peer`, an IP address)
        and its connection: the queued faults by default. A subclass may decide per machine,
        and may block here (the request not taken yet) until a test lets it go on."""
        return self._next_fault()

    def check_auth(self, authorization: str | None) -> None:
        if authorization != f"Bearer {self.api_key}":
            raise Reject(
                401,
                [_error("The provided authorization grant is invalid, expired, or revoked")],
            )
        if self.forbidden:
            raise Reject(403, [_error("access forbidden")])

    def validate(self, payload: Any) -> None:
        """SendGrid's documented rules; raises Reject(400) with SendGrid-style errors."""
        if not isinstance(payload, dict):
            raise Reject(400, [_error("Bad Request", None)])
        if self.validator is not None:
            violations = sorted(self.validator.iter_errors(payload), key=lambda e: list(e.path))
            if violations:
                raise Reject(
                    400,
                    [
                        _error(e.message, ".".join(str(p) for p in e.absolute_path) or None)
                        for e in violations[:10]
                    ],
                )
        personalizations = payload.get("personalizations")
        if not isinstance(personalizations, list) or not personalizations:
            raise Reject(
                400, [_error("The personalizations field is required.", "personalizations")]
            )
        if len(personalizations) > MAX_RECIPIENTS:
            raise Reject(
                400,
                [
                    _error(
                        "The personalizations array may not have more than 1000 items.",
                        "personalizations",
                    )
                ],
            )
        sender = payload.get("from")
        if not isinstance(sender, dict) or not _ADDRESS.match(str(sender.get("email", ""))):
            raise Reject(
                400, [_error("The from email does not contain a valid address.", "from.email")]
            )
        self._check_content(payload)
        self._check_headers(payload.get("headers"), "headers")
        global_args = payload.get("custom_args")
        global_args_bytes = len(str(global_args).encode()) if global_args else 0
        total = 0
        errors: list[dict[str, Any]] = []
        for index, personalization in enumerate(personalizations):
            errors.extend(
                self._check_personalization(index, personalization, payload, global_args_bytes)
            )
            for kind in ("to", "cc", "bcc"):
                total += len(personalization.get(kind) or [])
        if total > MAX_RECIPIENTS:
            errors.append(
                _error(
                    "The total number of recipients must be no more than 1000.",
                    "personalizations",
                )
            )
        if errors:
            raise Reject(400, errors)

    def _check_content(self, payload: dict[str, Any]) -> None:
        content = payload.get("content")
        if payload.get("template_id"):
            return
        if not isinstance(content, list) or not content:
            raise Reject(
                400,
                [
                    _error(
                        "Unless a valid template_id is provided, the content parameter is required.",
                        "content",
                    )
                ],
            )
        types = [str(part.get("type", "")).lower() for part in content if isinstance(part, dict)]
        if "text/plain" in types and types.index("text/plain") != 0:
            raise Reject(
                400,
                [
                    _error(
                        "If present, text/plain content must be first, followed by any other content.",
                        "content",
                    )
                ],
            )
        if (
            "text/html" in types
            and "text/plain" in types
            and types.index("text/html") < types.index("text/plain")
        ):
            raise Reject(
                400,
                [
                    _error(
                        "If present, text/plain and text/html may only be provided in that order.",
                        "content",
                    )
                ],
            )
        for index, part in enumerate(content):
            if not isinstance(part, dict) or not part.get("value"):
                raise Reject(
                    400,
                    [
                        _error(
                            "The content value must be a string at least one character in length.",
                            f"content.{index}.value",
                        )
                    ],
                )

    def _check_headers(self, headers: Any, where: str) -> list[dict[str, Any]]:
        if headers is None:
            return []
        errors = []
        if not isinstance(headers, dict):
            raise Reject(400, [_error("Headers must be an object.", where)])
        for name, value in headers.items():
            if str(name).lower() in RESERVED_HEADERS:
                errors.append(
                    _error(f"The header {name} is reserved and cannot be set.", f"{where}.{name}")
                )
            if not isinstance(value, str):
                errors.append(
                    _error(
                        "Invalid type. Expected: string, given: " + type(value).__name__ + ".",
                        f"{where}.{name}",
                    )
                )
        if errors and where == "headers":
            raise Reject(400, errors)
        return errors

    def _check_personalization(
        self, index: int, personalization: Any, payload: dict[str, Any], global_args_bytes: int
    ) -> list[dict[str, Any]]:
        where = f"personalizations.{index}"
        if not isinstance(personalization, dict):
            return [_error("Invalid type. Expected: object.", where)]
        errors: list[dict[str, Any]] = []
        to = personalization.get("to")
        if not isinstance(to, list) or not to:
            errors.append(
                _error(
                    "The to array is required for all personalization objects, and must have at least one email object with a valid email address.",
                    f"{where}.to",
                )
            )
            return errors
        seen: set[str] = set()
        for kind in ("to", "cc", "bcc"):
            for position, address in enumerate(personalization.get(kind) or []):
                email = str(address.get("email", "") if isinstance(address, dict) else "")
                spot = f"{where}.{kind}.{position}.email"
                if not _ADDRESS.match(email):
                    errors.append(_error("Does not contain a valid address.", spot))
                    continue
                key = email.lower()
                if key in seen:
                    errors.append(
                        _error(
                            f"Each email address in the personalization block should be unique between to, cc, and bcc. We found the first duplicate instance of [{email}] in the {where}.{kind} field.",
                            spot,
                        )
                    )
                seen.add(key)
                bad = self.bad_addresses.get(key)
                if bad is not None:
                    errors.append(_error(bad, spot))
        subject = personalization.get("subject") or payload.get("subject")
        if not subject and not payload.get("template_id"):
            errors.append(
                _error(
                    "The subject is required. You can get around this requirement if you use a template with a subject defined or if every personalization has a subject defined.",
                    "subject",
                )
            )
        substitutions = personalization.get("substitutions") or {}
        if not isinstance(substitutions, dict) or any(
            not isinstance(v, str) for v in substitutions.values()
        ):
            errors.append(_error("Substitutions must be strings.", f"{where}.substitutions"))
        custom_args = personalization.get("custom_args") or {}
        if not isinstance(custom_args, dict) or any(
            not isinstance(v, str) for v in custom_args.values()
        ):
            errors.append(_error("Custom args must be strings.", f"{where}.custom_args"))
        else:
            size = global_args_bytes + sum(
                len(k.encode()) + len(v.encode()) for k, v in custom_args.items()
            )
            if size > CUSTOM_ARGS_MAX_BYTES:
                errors.append(
                    _error(
                        "The custom arguments may not exceed 10,000 bytes in total.",
                        f"{where}.custom_args",
                    )
                )
        errors.extend(self._check_headers(personalization.get("headers"), f"{where}.headers"))
        return errors

    def take(self, payload: dict[str, Any], peer: str | None = None) -> str:
        """Record an accepted request (from the machine at `peer`); returns its X-Message-Id."""
        message_id = secrets.token_urlsafe(16)
        if self.webhook is not None:
            self.webhook.schedule(message_id, payload)
        if not self.record:
            # Counting only (benchmarks): the server shares the sender's cores, so it does not
            # build a record nobody reads.
            count = sum(
                len(personalization.get(kind) or [])
                for personalization in payload["personalizations"]
                for kind in ("to", "cc", "bcc")
            )
            with self.lock:
                self.accepted_recipients += count
            return message_id
        recipients: list[AcceptedRecipient] = []
        for personalization in payload["personalizations"]:
            args = personalization.get("custom_args") or {}
            substitutions = personalization.get("substitutions") or {}
            token = next(iter(substitutions.values()), None) if substitutions else None
            for kind in ("to", "cc", "bcc"):
                for address in personalization.get(kind) or []:
                    recipients.append(
                        AcceptedRecipient(
                            email=str(address["email"]).lower(),
                            issue_id=args.get("issue_id"),
                            delivery_id=args.get("delivery_id"),
                            token=token,
                            headers=dict(personalization.get("headers") or {}),
                            peer=peer,
                        )
                    )
        with self.lock:
            self.accepted_recipients += len(recipients)
            if self.record:
                for r in recipients:
                    key = (r.issue_id, r.email)
                    if self.received[key]:
                        self.duplicates += 1
                    self.received[key] += 1
                self.accepted.append(
                    AcceptedRequest(
                        message_id, payload if self.keep_payloads else None, recipients, peer
                    )
                )
        return message_id


def _handler_for(server: SendGridServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(
            self, status: int, body: dict[str, Any] | None, headers: dict[str, str]
        ) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in headers.items():
                if name == "X-RateLimit-Reset" and value.startswith("+"):
                    value = str(time.time() + float(value[1:]))
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
            self.close_connection = True

        def do_GET(self) -> None:
            if self.path == "/_stats":
                self._answer(200, server.stats(), {})
            else:
                self._answer(404, {"errors": [_error("not found")]}, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with server.lock:
                server.requests += 1
            status, body, headers = self._handle(raw)
            if status is None:
                return
            with server.lock:
                server.statuses[status] += 1
            # OSError: the client gave up (timed out); what was taken stays taken.
            with contextlib.suppress(OSError):
                self._answer(status, body, headers)

        def _handle(self, raw: bytes) -> tuple[int | None, dict[str, Any] | None, dict[str, str]]:
            if self.path.rstrip("/") != "/v3/mail/send":
                return 404, {"errors": [_error("not found")]}, {}
            try:
                server.check_auth(self.headers.get("Authorization"))
                try:
                    payload = json.loads(raw)
                except ValueError:
                    raise Reject(400, [_error("Bad Request", None)]) from None
                peer = str(self.client_address[0])
                fault = server.admit(peer, payload, self.connection)
                if fault is not None and not fault.accept and not fault.drop:
                    return fault.status or 500, fault.body, fault.headers
                server.validate(payload)
            except Reject as reject:
                return reject.status, {"errors": reject.errors}, {}
            if fault is not None and fault.drop:
                if fault.accept:
                    server.take(payload, peer)
                self._drop()
                return None, None, {}
            message_id = server.take(payload, peer)
            delay = server.latency + (fault.delay if fault is not None else 0.0)
            if delay:
                time.sleep(delay)
            if fault is not None and fault.hold is not None:
                with server.lock:
                    server._holds.add(fault.hold)
                fault.hold.wait()
            return 202, None, {"X-Message-Id": message_id}

        def _drop(self) -> None:
            # An RST instead of a polite FIN, like a proxy that died mid-request.
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self.close_connection = True
            self.connection.close()

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="SG.test-key")
    parser.add_argument("--no-schema", action="store_true", help="skip jsonschema validation")
    parser.add_argument("--no-record", action="store_true", help="count only (large benchmarks)")
    args = parser.parse_args()
    server = SendGridServer(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        validate_schema=not args.no_schema,
        record=not args.no_record,
    )
    print(f"listening {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
