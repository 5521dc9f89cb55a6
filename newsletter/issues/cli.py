"""`newsletter issue …`: build, preview, edit, approve and schedule the weekly issue.

Sending commands (send, send-test, resolve, pause, resume, cancel) are registered on this same
group by newsletter/sending/cli.py.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Build, preview, approve, schedule and send the weekly issue.", no_args_is_help=True
)
