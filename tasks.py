"""invoke entry point: every task lives in the bakehouse package (src/bakehouse/cli.py)."""

from bakehouse.cli import ns

__all__ = ["ns"]
