"""Access logs without the credentials in link paths.

A preferences, unsubscribe, confirmation or tracking URL carries a signed token that is the
person's key: with it anyone can export or erase their data. uvicorn logs each request's full
path, so its access log (and whatever ships it elsewhere) would keep every such key. The filter
keeps the route and the token's first characters (enough to match a complaint to a log line)
and drops the rest.
"""

from __future__ import annotations

import logging
import re

from newsletter import paths

# The public paths whose first segment after the prefix is a link credential (paths.py).
_TOKEN_PATH = re.compile(
    "^(" + "|".join(re.escape(p) for p in paths.TOKEN_PREFIXES) + r")([^/?#]{7})[^/?#]*"
)
KEPT = 6


def redact(path: str) -> str:
    return _TOKEN_PATH.sub(lambda m: f"{m[1]}{m[2][:KEPT]}…", path)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access: (client, method, path with query, http version, status).
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def install() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
