"""What every task of the command layer shares: one description per flag (so ``--target`` or
``--json`` mean the same everywhere), the ``@command`` decorator that makes a task from a
function, and the one place errors are reported: a message and a hint, exit 2 for bad input
and 1 for failed work, no traceback unless ``--debug`` (or INVOKE_DEBUG=1).

Heavy modules (jinja2, yaml, boto3) load inside the helpers, so listing tasks stays fast.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.exceptions import Exit
from invoke.tasks import Task, task

from bakehouse.errors import EXIT_FAILED, EXIT_INTERRUPTED, BakehouseError, printable

if TYPE_CHECKING:
    from bakehouse.project import Project
    from bakehouse.spec import ImageSpec
    from bakehouse.targets.base import Target

F = TypeVar("F", bound=Callable[..., Any])
EXIT_BROKEN_PIPE = 141  # as a program killed by SIGPIPE

# every flag, described once
FLAGS = {
    "image": "the image (a file stem in images/; `invoke images.list` shows them)",
    "target": "local (default: qemu on this machine) or aws (AMIs; the account holds the state)",
    "json": "print the result as JSON (for pipelines)",
    "profile": "aws: the AWS profile (default: the standard credential chain)",
    "region": "aws: these regions instead of the definition's targets.aws.regions "
    "(the first one builds)",
    "runner_cidr": "aws: the one address allowed to reach build and verify instances over SSH, "
    "e.g. 203.0.113.7/32",
    "wide_runner_cidr": "aws: accept a --runner-cidr wider than one address (a NAT pool; "
    "every address in it can reach the instances)",
    "version": "a version from `invoke images.history` (default: the newest verified)",
    "channel": "a channel",
    "dry_run": "say what would happen; change nothing",
    "yes": "do it (default: only print the plan)",
}

# what a flag means for one task, where it differs from FLAGS
HELP: dict[str, dict[str, str]] = {
    "images_show": {
        "json": "print JSON instead of YAML",
    },
    "images_diff": {
        "old": "older version (default: the one before --new)",
        "new": "newer version (default: the newest)",
    },
    "render": {
        "image": "one image (default: every image)",
        "target": "one target (default: every target)",
    },
    "validate": {
        "image": "one image (default: every image)",
        "target": "one target (default: every target)",
        "packer": "also run `packer validate` and `packer fmt -check` "
        "(default; --no-packer: schema only)",
    },
    "bake": {
        "channel": "publish to this channel instead of the definition's publish.channels",
        "no_publish": "bake and verify, but do not move any channel",
        "no_verify": "bake only: the image stays unverified and cannot be published",
        "rebuild_base": "local: build the base image again even if the cached one is intact",
        "keep_run": "keep the run's working folder (keys, logs, Packer output)",
        "keep_on_failure": "local: when a provisioning step fails, keep the build VM running "
        "and say how to reach it and how to end it",
    },
    "verify": {
        "version": "a version from `invoke images.history` (default: the newest)",
        "base": "verify the image's base instead: the unhardened starting point",
    },
    "publish": {
        "channel": "channel to point at it",
    },
    "revoke": {
        "base": "local: revoke the base the version (default: the newest) was baked from; "
        "the next bake builds a new one and nightly rebakes what used it",
        "version": "the version to take back",
        "reason": "why: recorded with it (and on the AMIs)",
    },
    "roll": {
        "channel": "the channel whose image to roll onto (default: the definition's first)",
        "dry_run": "print the plan (groups, versions, images, preferences, waves); change nothing",
        "wait": "wait for a refresh already running instead of refusing",
    },
    "deploy": {
        "channel": "channel to publish to and roll from (default: the definition's first)",
        "fresh": "bake a new image even if the newest one is up to date (local)",
        "report": "folder for deploy.json, deploy.md and deploy.junit.xml (default: a new "
        "folder under the state folder's reports/)",
    },
    "nightly": {
        "image": "only these images (default: every image)",
        "force": "bake these images whatever the decision",
        "dry_run": "decide and print; bake nothing",
        "plan": "decide and print what to bake as a CI matrix (--json: GitHub Actions' "
        'strategy.matrix under "matrix"); bake nothing',
        "gather": "the folder of a fanned-out run (plan.json and each job's "
        "bake-<image>.json): write one nightly report; exit 1 if a bake failed or left nothing",
        "shard": "K/N: only the K-th of N equal shares of the images (by name), for N runners "
        "that share one nightly (e.g. a CodeBuild batch); each image is in exactly one share",
        "workers": "bakes at a time (default: one per two cores)",
        "channel": "channel the nightly bakes publish to (default: latest)",
        "report": "folder for nightly.json, nightly.md and nightly.junit.xml (with --plan: "
        "plan.json and GitLab's child pipeline bakes.gitlab-ci.yml)",
    },
    "prune": {
        "image": "the image whose old versions to remove",
    },
    "gc": {
        "yes": "remove what was found (default: only list it)",
        "older_than": "aws: hours after which a run that is not running here is over",
        "keep_failed": "failed runs whose folders (logs) are kept, newest first (default: 5)",
    },
    "shell": {
        "version": "a version from `invoke images.history` (default: the newest)",
        "base": "boot the image's base instead: the unhardened starting point",
        "command": "run this command in the image instead of an interactive shell",
    },
    "report": {
        "image": "only these images (default: every image)",
        "target": "a target whose catalogue to show (default: local)",
        "out": "folder to write the site into (default: build/site; its pages are replaced)",
        "runs": "a folder of nightly and deploy reports, or one report's folder "
        "(default: the state folder's reports/)",
        "pending": "check each image's pending updates against the signed package indexes "
        "(default; --no-pending: offline, shown as not checked)",
        "open": "open the overview in the default browser when written",
    },
    "base": {
        "image": "image whose base to build or resolve",
        "rebuild": "local: build it again",
    },
}


# the only short flags, each meaning one thing in every task that has the flag
SHORT = {
    "image": "i",
    "target": "t",
    "json": "j",
    "channel": "c",
    "version": "v",
    "yes": "y",
    "dry_run": "n",
    "profile": "p",
    "region": "r",
}


class BakehouseTask(Task):  # type: ignore[type-arg]
    """invoke's Task with fixed short flags (SHORT) instead of invoke's first-free-letter
    ones."""

    def arg_opts(self, name: str, default: Any, taken_names: set[str]) -> dict[str, Any]:
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names)
        if name in SHORT and SHORT[name] not in taken_names:
            opts["names"] = [*opts["names"], SHORT[name]]
        return opts


def command(name: str | None = None) -> Callable[[F], Any]:
    """An invoke task from ``fn``: one description per flag (the task's own in HELP, else the
    shared one); repeatable list flags; the same short flags everywhere; errors reported
    once."""

    def wrap(fn: F) -> Any:
        params = list(inspect.signature(fn).parameters)[1:]
        hints = typing.get_type_hints(fn)
        own = HELP.get(fn.__name__, {})
        texts = {p: own.get(p) or FLAGS.get(p, "") for p in params}
        lists = [p for p in params if is_list(hints.get(p))]
        for p in lists:  # invoke shows no value for a list flag: say it takes one, often
            value = {"force": "IMAGE"}.get(p, p.upper())
            texts[p] = f"={value}, repeatable: {texts[p]}".rstrip(": ")
        kwargs: dict[str, Any] = {
            "positional": [],  # invoke's positionals swallow flags (`bake --help`); see cli
            "help": texts,
            "iterable": lists,
            "auto_shortflags": False,
            "klass": BakehouseTask,
        }
        if name:
            kwargs["name"] = name
        return task(**kwargs)(reported(fn))

    return wrap


def is_list(hint: Any) -> bool:
    """``list[str]`` or ``list[str] | None``: a flag that may be given several times."""
    return typing.get_origin(hint) is list or any(
        typing.get_origin(a) is list for a in typing.get_args(hint)
    )


def _debugging() -> bool:
    return os.environ.get("INVOKE_DEBUG") == "1" or logging.getLogger("invoke").isEnabledFor(
        logging.DEBUG
    )


def reported(fn: F) -> F:
    """Turn project errors into one message with a hint and the right exit status."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            check_flags(kwargs)
            return fn(*args, **kwargs)
        except BrokenPipeError:
            # the reader went away (`| head`): no traceback, and nothing more to write
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise Exit(code=EXIT_BROKEN_PIPE) from None
        except BakehouseError as exc:
            if _debugging():
                raise
            if kwargs.get("json"):
                raise _as_json(exc) from None
            raise Exit(exc.render() + _kept(exc), code=exc.exit_code) from None
        except KeyboardInterrupt as exc:
            if kwargs.get("json"):
                raise _as_json(exc) from None
            raise Exit("interrupted" + _kept(exc), code=EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def _as_json(exc: BaseException) -> Exit:
    """Under --json an error is a result too: one JSON object on stdout, the same exit."""
    import json

    from bakehouse.errors import as_json

    shown = as_json(exc)
    print(json.dumps(shown, indent=1))
    return Exit(code=shown["exit"])


def _kept(exc: BaseException) -> str:
    """Where a failed run's logs are: its folder is kept (see runs.run_dir)."""
    folder = getattr(exc, "kept", None)
    if folder is None:
        return ""
    return printable(
        f"\nlogs: {folder} (kept for this failure; `invoke gc --yes` removes all but the "
        "newest failed runs)"
    )


def check_flags(flags: dict[str, Any]) -> None:
    """Every flag value checked at the edge, against the same shapes as in definitions: an
    image, channel or version name reaches paths and parameter names only once it is one."""
    from bakehouse.errors import UsageError
    from bakehouse.names import check_flag

    for flag, value in flags.items():
        check_flag(flag, value)
    given = [f for f in APART if flags.get(f)]
    if len(given) > 1:
        shown = " and ".join(f"--{f.replace('_', '-')}" for f in given)
        raise UsageError(f"{shown} are different steps: give one", APART[given[0]])


# flags that each make a command a different step, never two at once
APART = {
    "plan": "--plan decides and prints the matrix; the bake jobs follow it, --gather ends it",
    "gather": "--gather reads a fanned-out run's results after its bake jobs",
    "dry_run": "--dry-run decides and prints, on one runner",
}


def project() -> Project:
    from bakehouse.project import find_project

    return find_project()


def spec(where: Project, image: str | None) -> ImageSpec:
    from bakehouse.errors import UsageError
    from bakehouse.lifecycle.definitions import show_image

    if not image:
        raise UsageError("say which image: --image NAME", "invoke images.list shows them")
    return show_image(where, image)


def target(
    where: Project,
    name: str,
    profile: str | None = None,
    region: list[str] | None = None,
    runner_cidr: str | None = None,
    wide_runner_cidr: bool = False,
) -> Target:
    from bakehouse import targets
    from bakehouse.targets.base import TargetOptions

    options = TargetOptions(profile, tuple(region or ()), runner_cidr, wide_runner_cidr)
    return targets.get(name, where, options)


def say(message: str) -> None:
    """Progress for people, on stderr (stdout is for results)."""
    print(printable(message), file=sys.stderr)


def show(text: str) -> None:
    """A plain result on stdout, escaped for the terminal."""
    print(printable(text))


def fail_with(status: int) -> None:
    """End with another program's exit status (a shell session's)."""
    if status != 0:
        raise Exit(code=status if 0 < status < 256 else EXIT_FAILED)


def fail_unless(ok: bool) -> None:
    if not ok:
        raise Exit(code=EXIT_FAILED)
