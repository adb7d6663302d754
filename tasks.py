"""invoke entry point: every task lives in the bakehouse package (src/bakehouse/tasks.py)."""

from bakehouse.tasks import ns

__all__ = ["ns"]
