"""The only module that starts processes: ``run(argv) -> Result``.

Commands are argv lists, never shell strings. Everything else builds argv and hands it here, so
the rest of the code is testable without running anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bakehouse.errors import ToolError

INSTALL_HINT = "run ./run (it installs packer, qemu-system-x86, qemu-utils and mmdebstrap with apt)"


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolError(f"{tool} is not installed", INSTALL_HINT)
    return path


def run(
    argv: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = False,
    input_text: str | None = None,
) -> Result:
    """Run ``argv`` to completion and capture its output."""
    args = tuple(str(a) for a in argv)
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=full_env,
            timeout=timeout,
            capture_output=True,
            text=True,
            input=input_text,
            check=False,
        )
    except FileNotFoundError:
        raise ToolError(f"{args[0]} is not installed", INSTALL_HINT) from None
    except subprocess.TimeoutExpired:
        raise ToolError(
            f"{args[0]} did not finish within {timeout:.0f} s", f"command: {' '.join(args)}"
        ) from None
    result = Result(args, proc.returncode, proc.stdout, proc.stderr)
    if check and not result.ok:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise ToolError(
            f"{args[0]} failed (exit {result.returncode}): " + " | ".join(tail),
            f"command: {' '.join(args)}",
        )
    return result
