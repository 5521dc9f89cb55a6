"""`newsletter users …`: staff accounts for the web app."""

from __future__ import annotations

import typer

app = typer.Typer(help="Staff accounts (admins and editors) for the web app.", no_args_is_help=True)
