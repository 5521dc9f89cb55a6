"""Weekly AI Tool Verdicts: the newsletter service."""

__version__ = "0.1.0"
