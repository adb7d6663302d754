"""The invoke task collection: ``invoke --list`` at the project root, or the ``bakehouse`` command.

Tasks are thin: parse flags, call one function in :mod:`bakehouse.app` (or a stage), print.
Heavy modules (jinja2, yaml, boto3) are imported inside the tasks so that listing stays fast.
Errors are reported once, here at the edge: a message and a hint, no traceback unless
``--debug`` (or INVOKE_DEBUG=1) is given.
"""

from __future__ import annotations

import functools
import json as _json
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.tasks import task

from bakehouse.errors import EXIT_INTERRUPTED, BakehouseError

if TYPE_CHECKING:
    from bakehouse.project import Project

F = TypeVar("F", bound=Callable[..., Any])


def _debugging() -> bool:
    return os.environ.get("INVOKE_DEBUG") == "1" or logging.getLogger("invoke").isEnabledFor(
        logging.DEBUG
    )


def reported(fn: F) -> F:
    """Turn project errors into one message with a hint and the right exit status."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BakehouseError as exc:
            if _debugging():
                raise
            raise Exit(exc.render(), code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


def _project() -> Project:
    from bakehouse.project import find_project

    return find_project()


def _emit_json(data: Any) -> None:
    sys.stdout.write(_json.dumps(data, indent=2, sort_keys=False) + "\n")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)


# ---- images.* ------------------------------------------------------------------------------------


@task(name="list", help={"json": "print JSON for pipelines"})
@reported
def images_list(c: Any, json: bool = False) -> None:
    """List the image definitions in images/ (name, parents, channels, description)."""
    from bakehouse import app

    rows = app.list_images(_project())
    if json:
        _emit_json(rows)
        return
    print(
        _table(
            [
                [
                    r["name"],
                    " ← ".join(
                        f.split("/")[-1].removesuffix(".yaml") for f in reversed(r["files"])
                    ),
                    ",".join(r["channels"]),
                    r["description"],
                ]
                for r in rows
            ],
            ["IMAGE", "DEFINED BY", "CHANNELS", "DESCRIPTION"],
        )
    )


@task(
    name="show",
    help={"image": "image name (file stem in images/)", "json": "print JSON instead of YAML"},
)
@reported
def images_show(c: Any, image: str, json: bool = False) -> None:
    """Show an image's fully resolved definition: defaults and extends merged, validated."""
    from bakehouse import app

    spec = app.show_image(_project(), image)
    data = spec.to_dict()
    if json:
        _emit_json(data)
        return
    import yaml

    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


# ---- render / validate ---------------------------------------------------------------------------

_SELECT_HELP = {
    "image": "one image (default: every image in images/)",
    "target": "local or aws (default: both)",
    "json": "print JSON for pipelines",
}


@task(help=_SELECT_HELP)
@reported
def render(c: Any, image: str | None = None, target: str | None = None, json: bool = False) -> None:
    """Render Packer templates (HCL2) for image × target into build/<image>/<target>.pkr.hcl."""
    from bakehouse import app

    project = _project()
    results = app.render_images(project, image, target)
    if json:
        _emit_json([r.to_dict(project.root) for r in results])
        return
    for r in results:
        state = "written" if r.changed else "unchanged"
        print(f"{r.image}/{r.target}: {r.path.relative_to(project.root)} ({state})")


@task(
    help={
        **_SELECT_HELP,
        "packer": "also run `packer validate` and `packer fmt -check` "
        "(default; --no-packer checks the definitions only)",
    }
)
@reported
def validate(
    c: Any,
    image: str | None = None,
    target: str | None = None,
    packer: bool = True,
    json: bool = False,
) -> None:
    """Validate image definitions and the Packer templates rendered from them."""
    from bakehouse import app
    from bakehouse.errors import EXIT_FAILED, EXIT_USAGE

    project = _project()
    results = app.validate_images(project, image, target, with_packer=packer)
    if json:
        _emit_json(
            [
                {
                    "image": v.image,
                    "ok": v.ok,
                    "error": v.error.message if v.error else None,
                    "hint": v.error.hint if v.error else None,
                    "rendered": [r.to_dict(project.root) for r in v.rendered],
                }
                for v in results
            ]
        )
    else:
        for v in results:
            if v.error is not None:
                print(f"FAIL {v.image}: {v.error.render()}", file=sys.stderr)
                continue
            for r in v.rendered:
                if r.problems:
                    print(
                        f"FAIL {v.image}/{r.target}:\n  " + "\n  ".join(r.problems), file=sys.stderr
                    )
                else:
                    checked = "schema, packer validate, packer fmt" if packer else "schema"
                    print(f"ok   {v.image}/{r.target} ({checked})")
    if any(v.error for v in results):
        raise Exit(code=EXIT_USAGE)
    if not all(v.ok for v in results):
        raise Exit(code=EXIT_FAILED)


images = Collection("images", images_list, images_show)
ns = Collection(render, validate, images)
ns.configure({"run": {"echo": False}})
