"""`newsletter stats`"""

from __future__ import annotations

import typer

app = typer.Typer(help="The numbers: deliveries, opens, clicks, votes.")
