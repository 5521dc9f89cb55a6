"""`newsletter issue send|send-test|resolve|pause|resume|cancel` (registered on the issue group)."""

from __future__ import annotations

from newsletter.issues.cli import app  # noqa: F401  (commands are added to this group)
