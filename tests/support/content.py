"""A compiled issue the sending tests hand to a transport directly (what the ledger would)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrozenContent:
    subject: str
    html: str
    text: str
    preheader: str = ""
