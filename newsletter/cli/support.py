"""Small helpers every command group shares: JSON output, errors, transactions."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def fail(message: str, code: int = 1) -> NoReturn:
    """A refused input or failed action: message on stderr, non-zero exit."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(message, err=True)


def require_suppression_key() -> None:
    """Stop with the reason if the suppression key is not the one the database was made with;
    a database that does not exist yet, or is not migrated, is `newsletter init`'s business."""
    from sqlalchemy.exc import SQLAlchemyError

    from newsletter.db import transaction
    from subscribers.keys import SuppressionKeyChanged, check_suppression_key

    try:
        with transaction() as session:
            check_suppression_key(session)
    except SuppressionKeyChanged as exc:
        fail(str(exc), code=2)
    except SQLAlchemyError:
        return


def is_terminal() -> bool:
    return sys.stderr.isatty()
