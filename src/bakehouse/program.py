"""The ``bakehouse`` program over the task collection (``invoke`` runs the same tasks with
invoke's own program): no runner flags, the image first without its flag, a command line that
does not parse is bad input (exit 2), and a reader that goes away ends it quietly."""

from __future__ import annotations

import contextlib
import os
import sys
import typing
from collections.abc import Iterator
from typing import Any

from invoke.collection import Collection
from invoke.exceptions import Exit, ParseError
from invoke.parser.argument import Argument
from invoke.program import Program

from bakehouse.command import EXIT_BROKEN_PIPE, is_list
from bakehouse.errors import EXIT_USAGE, printable

# invoke's flags for tasks that run shell commands: bakehouse's tasks run none through invoke,
# so under `bakehouse` they would be accepted and do nothing (--dry looks like a dry run)
RUNNER_FLAGS = (
    "command-timeout",
    "config",
    "dry",
    "echo",
    "hide",
    "prompt-for-sudo-password",
    "pty",
    "warn-only",
)


class BakehouseProgram(Program):
    """The ``bakehouse`` program: the task collection without invoke's runner flags, the image
    accepted first without its flag (``bakehouse bake web``), and a command line that does not
    parse (an unknown flag or task) is bad input: exit 2 with a hint, as every other bad
    input."""

    def core_args(self) -> list[Argument]:
        return [a for a in super().core_args() if a.name not in RUNNER_FLAGS]

    def update_config(self, merge: bool = True) -> None:
        self.config.load_overrides({}, merge=False)
        self.config.set_runtime_path(None)
        self.config.load_runtime(merge=False)
        if merge:
            self.config.merge()

    def parse_core(self, argv: list[str] | None) -> None:
        with _bad_input():
            super().parse_core(argv)

    def parse_tasks(self) -> None:
        self.core.unparsed = image_first(self.core.unparsed, self.collection)
        with _bad_input():
            super().parse_tasks()


def _image_names() -> set[str]:
    """The project's image names (none when there is no project: the task will say so)."""
    from bakehouse.errors import BakehouseError
    from bakehouse.project import find_project

    try:
        return {p.stem for p in (find_project().root / "images").glob("[!_]*.yaml")}
    except BakehouseError:
        return set()


def image_first(argv: list[str], collection: Collection) -> list[str]:
    """``bake web …`` is ``bake --image web …``: a word right after a task that takes one
    image is that image (not another task, not a flag). Only there, so a flag's value is never
    mistaken for it."""
    out: list[str] = []
    for i, token in enumerate(argv):
        out.append(token)
        if token not in collection.task_names or i + 1 >= len(argv):
            continue
        following = argv[i + 1]
        if following.startswith("-"):
            continue
        if following in collection.task_names and following not in _image_names():
            continue  # another task (`base` is both: an image and a task, and the image wins)
        hints = typing.get_type_hints(collection[token].body)
        if "image" in hints and not is_list(hints["image"]):  # not nightly's several
            out.append("--image")
    return out


@contextlib.contextmanager
def _bad_input() -> Iterator[None]:
    try:
        yield
    except ParseError as exc:
        hint = "bakehouse --help lists the tasks; bakehouse TASK --help its flags"
        raise Exit(printable(f"error: {exc}\nhint: {hint}"), code=EXIT_USAGE) from None


def broken_pipe_quietly(run: Any) -> None:
    """``bakehouse --help | head``: invoke's own output cut short ends without a traceback."""
    try:
        run()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_BROKEN_PIPE)
