"""Every error class of the project, in one place.

Every failure a user can cause or meet is a :class:`BakehouseError` carrying a one-line message,
an optional hint and the exit status. They are reported once, at the edge (the command layer),
without a traceback unless debugging is on. Lower layers raise; they never print or exit.
"""

from __future__ import annotations

from typing import Any

EXIT_USAGE = 2  # bad input: definitions, flags, arguments
EXIT_FAILED = 1  # the work itself failed: a bake, a verify, an API call
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


_CONTROL = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    # C0 and C1 controls (not tab and newline), and the bidirectional overrides that make
    # text read differently from what it is (U+202A-202E, U+2066-2069)
    for c in [*range(32), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    if c not in (9, 10)
}


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences from a tag, an SSM
    description or a mirror) shown as ``\\x1b``, never sent raw; newlines and tabs kept."""
    return text.translate(_CONTROL)


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
        return printable(text)


# ---- bad input (exit 2) -------------------------------------------------------------------------


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


def as_json(exc: BaseException) -> dict[str, Any]:
    """An error as ``--json`` prints it: always the same keys (null where they do not apply);
    ``errors`` lists every problem of a definition; ``logs`` is a failed run's kept folder."""
    if isinstance(exc, BakehouseError):
        message, hint, code = exc.message, exc.hint, exc.exit_code
    else:  # Ctrl-C
        message, hint, code = "interrupted", None, EXIT_INTERRUPTED
    kept = getattr(exc, "kept", None)
    return {
        "error": message,
        "hint": hint,
        "file": getattr(exc, "file", None),
        "line": getattr(exc, "line", None),
        "key": getattr(exc, "key", None),
        "exit": code,
        "errors": [_one(e) for e in getattr(exc, "errors", [exc])],
        "logs": str(kept) if kept else None,
    }


def _one(exc: BaseException) -> dict[str, Any]:
    return {
        "error": getattr(exc, "message", str(exc)),
        "hint": getattr(exc, "hint", None),
        "file": getattr(exc, "file", None),
        "line": getattr(exc, "line", None),
        "key": getattr(exc, "key", None),
    }


class Invalid(Exception):
    """Part of a definition was wrong; what is wrong is already in the parse's ``errors``."""


class SpecErrors(SpecError):
    """Every problem found in one definition, in the order found; reads as the first one (file,
    line, key) and renders them all, one error and hint each."""

    def __init__(self, errors: list[SpecError]):
        errors = sorted(errors, key=lambda e: (e.file or "", e.line or 0))  # as the file reads
        first = errors[0]
        super().__init__(first.detail, first.hint, file=first.file, line=first.line, key=first.key)
        self.errors = list(errors)
        if len(errors) > 1:
            self.message += f" (and {len(errors) - 1} more)"

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


class UsageError(BakehouseError):
    """A bad flag, argument or combination of them; or a request the state does not allow
    (publishing a failed image, revoking twice)."""

    exit_code = EXIT_USAGE


class Busy(UsageError):
    """Another run holds what this one needs (one bake per image at a time)."""


# ---- the work failed (exit 1) -------------------------------------------------------------------


class ToolError(BakehouseError):
    """An external tool (packer, qemu, mmdebstrap) is missing or failed."""


class RenderError(BakehouseError):
    """A template could not be rendered."""


class PackerError(BakehouseError):
    """``packer build`` failed, or finished without the artifact it should have made."""


class BaseError(BakehouseError):
    """The local base image could not be built, or the cached one is damaged."""


class HostPatchError(BakehouseError):
    """Applying the pending updates to the local base on the host failed."""


class VmError(BakehouseError):
    """A VM did not boot, or could not be reached over SSH."""


class VerifyError(BakehouseError):
    """The hardening suite could not run (no verdict: never a pass)."""


class VerifyFailed(BakehouseError):
    """The image was baked but did not pass verification; it is recorded as failed."""


class IndexError_(BakehouseError):
    """Package indexes could not be fetched or did not verify."""


class CatalogueError(BakehouseError):
    """The catalogue (local folder or the target's own store) is damaged or refuses a change."""


class Untrusted(CatalogueError):
    """A document in the state folder that this machine's trust key did not seal."""


class AwsError(BakehouseError):
    """An AWS call failed, or AWS holds something bakehouse cannot use."""


class SsmError(AwsError):
    """A command over SSM Run Command did not complete."""


# ---- stopped ------------------------------------------------------------------------------------


class Terminated(BakehouseError):
    """SIGTERM arrived: unwind like Ctrl-C so every ``with`` block cleans up."""

    exit_code = EXIT_TERMINATED
