"""Is a hit on a pixel, link or vote a person, or a machine acting before (or instead of) one?

Mail privacy proxies fetch every image when a message arrives, and corporate link scanners
follow every link before the reader sees it. Their hits are kept, flagged `machine=True`, and
left out of the human numbers. Three signals, any one is enough:
- SendGrid's own verdict (`sg_machine_open` on an open event; see events.py);
- a user agent known to belong to a proxy, scanner or script (below);
- a hit within `NEWSLETTER_MACHINE_WINDOW_SECONDS` of the delivery's sent_at: no person reads
  that fast, but a scanner on the receiving server does.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta

# Fragments of user agents that are never a person reading. Matched case-insensitively.
# Gmail's and Yahoo's image proxies are listed deliberately: they may fetch on a reader's
# behalf, but they also prefetch and cache, so an open seen only through them is not proof of a
# reader (the editors' brief counts them as machines).
_MACHINE_AGENT_FRAGMENTS = (
    "googleimageproxy",
    "ggpht.com",
    "yahoomailproxy",
    "yahoo! slurp",
    # Microsoft Defender for Office 365 Safe Links and Office's link pre-checks
    "safelinks",
    "bingpreview",
    "microsoft office existence discovery",
    "microsoft office protocol discovery",
    "ms-office; ms office protocol",
    # Secure email gateways and URL sandboxes
    "barracuda",
    "proofpoint",
    "mimecast",
    "messagelabs",
    "symantec",
    "ironport",
    "trendmicro",
    "forcepoint",
    "sophos",
    "fortiguard",
    "checkpoint",
    "zscaler",
    "paloalto",
    # Scripts and headless browsers
    "headlesschrome",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "okhttp",
    "java/",
    "libwww",
    "curl/",
    "wget/",
    "facebookexternalhit",
    "slackbot",
)
_MACHINE_AGENT_WORDS = re.compile(r"\b(bot|crawler|spider|scanner|preview|monitor)\b", re.I)

# A browser or mail client names itself; Apple's Mail Privacy Protection proxy sends only a
# bare WebKit string ("Mozilla/5.0" or "... AppleWebKit/605.1.15 (KHTML, like Gecko)") with
# none of these tokens.
_BROWSER_TOKENS = re.compile(
    r"(Safari|Chrome|Chromium|Firefox|Edg|OPR|Opera|Thunderbird|Outlook|Mobile|Version)/", re.I
)
# Apple's own network (AS714) hosts the Mail Privacy Protection prefetch proxies.
_APPLE_PROXY_NETWORK = ipaddress.ip_network("17.0.0.0/8")


def is_machine_agent(user_agent: str | None, client_ip: str | None = None) -> bool:
    """True when the user agent (and, for Apple's proxy, the address) is not a reader's."""
    agent = (user_agent or "").strip()
    if not agent:
        return True
    lowered = agent.lower()
    if any(fragment in lowered for fragment in _MACHINE_AGENT_FRAGMENTS):
        return True
    if _MACHINE_AGENT_WORDS.search(agent):
        return True
    if agent == "Mozilla/5.0":
        return True
    return bool(
        lowered.startswith("mozilla/5.0")
        and "applewebkit" in lowered
        and not _BROWSER_TOKENS.search(agent)
        and _from_apple(client_ip)
    )


def _from_apple(client_ip: str | None) -> bool:
    if not client_ip:
        return False
    try:
        return ipaddress.ip_address(client_ip) in _APPLE_PROXY_NETWORK
    except ValueError:
        return False


def too_soon(sent_at: datetime | None, now: datetime, window_seconds: int) -> bool:
    """A hit this close to the send is the receiving server's scanner, not the reader."""
    if sent_at is None or window_seconds <= 0:
        return False
    return now - sent_at < timedelta(seconds=window_seconds)


def is_machine_hit(
    user_agent: str | None,
    client_ip: str | None,
    *,
    sent_at: datetime | None,
    now: datetime,
    window_seconds: int,
) -> bool:
    return is_machine_agent(user_agent, client_ip) or too_soon(sent_at, now, window_seconds)
