"""The project's error types.

Every failure a user can cause or meet is a :class:`BakehouseError` carrying a one-line message,
an optional hint and the exit status. They are reported once, at the edge (the CLI), without a
traceback unless debugging is on.
"""

from __future__ import annotations

EXIT_USAGE = 2  # bad input: definitions, flags, arguments
EXIT_FAILED = 1  # the work itself failed: a bake, a verify, an API call
EXIT_INTERRUPTED = 130


class BakehouseError(Exception):
    """An error meant for the user: a message, a hint and an exit status."""

    exit_code: int = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f"\nhint: {self.hint}"
        return text


class SpecError(BakehouseError):
    """An image definition is malformed: names file, line and key."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ):
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        if key:
            where += f"{key}: "
        super().__init__(where + message, hint)
        self.file = file
        self.line = line
        self.key = key
        self.detail = message


class UsageError(BakehouseError):
    """A bad flag, argument or combination of them."""

    exit_code = EXIT_USAGE


class ToolError(BakehouseError):
    """An external tool (packer, qemu, mmdebstrap) is missing or failed."""


class RenderError(BakehouseError):
    """A template could not be rendered."""
