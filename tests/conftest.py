"""Shared fixtures: the project checkout and small throwaway projects for definition tests."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TODAY = dt.date(2026, 6, 1)  # fixed, so waiver expiry tests do not age
# one trust key for the whole run and every command it starts (the tests' state folders are
# throwaway); tests/unit/test_trust.py covers the key file a machine makes for itself
os.environ["BAKEHOUSE_TRUST_KEY"] = "7e57" * 16

MINIMAL_DEFAULTS = """\
base:
  aws:
    ssm_parameter: /aws/service/debian/release/12/latest/amd64
"""


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def index_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One download cache of Debian's signed package indexes for the whole run, shared by the
    parallel workers (entries are content-addressed and written atomically), so the ~10 MB
    are fetched once; every use still fetches and checks the signed InRelease."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "debian-indexes"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("debian-indexes")


class TmpImages:
    """A throwaway images/ + packer/scripts/ folder pair."""

    def __init__(self, base: Path):
        self.root = base
        self.images = base / "images"
        self.scripts = base / "packer" / "scripts"
        self.images.mkdir(parents=True)
        self.scripts.mkdir(parents=True)
        (self.scripts / "web.sh").write_text("#!/bin/sh\n")
        self.write("_defaults", MINIMAL_DEFAULTS)

    def write(self, name: str, text: str) -> Path:
        path = self.images / f"{name}.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    def catalog(self):  # type: ignore[no-untyped-def]
        from bakehouse.spec import Catalog

        return Catalog(self.images, self.scripts)

    def load(self, name: str):  # type: ignore[no-untyped-def]
        return self.catalog().load(name, TODAY)


@pytest.fixture
def tmp_images(tmp_path: Path) -> TmpImages:
    return TmpImages(tmp_path)


@pytest.fixture
def copy_project(tmp_path: Path) -> Callable[[], Path]:
    """A copy of the real project's images/ and packer/ in a temp folder."""

    def make() -> Path:
        dest = tmp_path / "project"
        for sub in ("images", "packer"):
            shutil.copytree(ROOT / sub, dest / sub)
        return dest

    return make


def processes_with(marker: str) -> list[int]:
    """The pids of every process whose command line holds ``marker``."""
    from bakehouse.runs import command_lines

    return [pid for pid, cmd in command_lines().items() if marker in cmd]


def complaints(tool: str, *args: str | Path) -> str:
    """What a checking tool of the virtualenv (actionlint, check-jsonschema) says of files:
    its output when it refuses them, "" when it accepts them."""
    import subprocess
    import sys

    argv = [str(Path(sys.executable).parent / tool), *map(str, args)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return "" if done.returncode == 0 else done.stdout + done.stderr


def run_cli(*argv: str) -> tuple[int, str, str]:
    """The `bakehouse` program in this process: (exit code, stdout, stderr)."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from bakehouse.cli import program

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            program.run(["bakehouse", *argv], exit=True)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()
