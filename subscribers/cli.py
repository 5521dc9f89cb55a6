"""`newsletter subscribers …`"""

from __future__ import annotations

import typer

app = typer.Typer(help="Manage the subscriber list.", no_args_is_help=True)
