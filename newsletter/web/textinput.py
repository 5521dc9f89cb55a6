"""One check for every text a request carries: no NUL and no lone surrogate gets past the door.

PostgreSQL cannot store NUL in text, and neither engine can encode a lone surrogate, so either
one in a login form, an archive path, an editor field or a search turned into a 500 deep in a
query. Here, ahead of routing, the path, the query string and form or JSON bodies are read once
and refused with a 400 naming the field, so every route (and every route added later) is
covered. Left out: the SendGrid webhook (its signature covers the raw bytes; it cleans what it
stores, tracking/webhook.py) and multipart uploads (the CSV importer judges the file's content).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NOT_CHECKED = ("/webhooks/",)


def unstorable(text: str) -> str | None:
    """What is wrong with `text` for a database, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "a NUL character" if found[0] == "\x00" else "a lone surrogate (not valid Unicode)"


def _first_bad(value: Any, where: str) -> str | None:
    if isinstance(value, str):
        problem = unstorable(value)
        return f"{where} contains {problem}" if problem else None
    if isinstance(value, list):
        for index, item in enumerate(value):
            if found := _first_bad(item, f"{where}[{index}]"):
                return found
    if isinstance(value, dict):
        for key, item in value.items():
            if found := _first_bad(key, f"a key in {where}") or _first_bad(item, f"{where}.{key}"):
                return found
    return None


def _text_problem(text: str) -> str | None:
    """What is wrong with one name or value of a form, read byte for byte (latin-1)."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return "is not valid UTF-8 text (a lone surrogate or a broken byte)"
    return None


def _form_problem(raw: bytes, what: str) -> str | None:
    # Read byte for byte (latin-1): a NUL is found however the rest is encoded. A lone
    # surrogate cannot be spelled in strict UTF-8; its bytes (%ED%A0%80), or any other broken
    # sequence (%FF), are no text either: the form parser would have stored them as U+FFFD,
    # a subject of "Al\ufffd\ufffd\ufffdpha" or an address no one can be mailed at.
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1"):
        if problem := _text_problem(name) or _text_problem(value):
            field = name.encode("latin-1").decode("utf-8", "replace").replace("\x00", "")[:60]
            return f"{what} field {field!r} {problem}"
    return None


def _body_problem(content_type: str, body: bytes) -> str | None:
    if content_type.startswith("application/x-www-form-urlencoded"):
        return _form_problem(body, "form")
    if "json" in content_type and body:
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            return None  # the route answers malformed JSON itself (422)
        return _first_bad(value, "the JSON body")
    return None


class TextInputMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_NOT_CHECKED):
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        path = unquote(raw_path.decode("latin-1"), errors="replace")
        problem = unstorable(path) and f"the path contains {unstorable(path)}"
        if not problem:
            try:
                unquote_to_bytes(raw_path).decode("utf-8")
            except UnicodeDecodeError:
                problem = "the path is not valid UTF-8 text (a lone surrogate or a broken byte)"
        query = scope.get("query_string", b"")
        if not problem and query:
            problem = _form_problem(query, "query")
        content_type = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
        checks_body = content_type.startswith("application/x-www-form-urlencoded") or (
            "json" in content_type
        )
        if problem or not checks_body or scope["method"] in ("GET", "HEAD"):
            if problem:
                await _refuse(send, problem)
            else:
                await self.app(scope, receive, send)
            return
        # The body limit runs outside this layer, so what is read here is already bounded.
        messages: list[Message] = []
        body = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if problem := _body_problem(content_type, body):
            await _refuse(send, problem)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, problem: str) -> None:
    body = json.dumps({"detail": f"Refused: {problem}."}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
