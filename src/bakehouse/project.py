"""Where a project's files are: image definitions, Packer templates, build and state folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bakehouse.errors import UsageError


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def packer_dir(self) -> Path:
        return self.root / "packer"

    @property
    def scripts_dir(self) -> Path:
        return self.packer_dir / "scripts"

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def state_dir(self) -> Path:
        """Catalogue, caches and artifacts; BAKEHOUSE_STATE_DIR moves it (e.g. to a bigger disk)."""
        env = os.environ.get("BAKEHOUSE_STATE_DIR")
        return Path(env).resolve() if env else self.root / ".bakehouse"


def _is_project(path: Path) -> bool:
    return (path / "images").is_dir() and (path / "packer").is_dir()


def find_project(start: Path | None = None) -> Project:
    """BAKEHOUSE_ROOT, else the nearest folder up from ``start`` with images/ and packer/,
    else the source tree bakehouse is installed from."""
    env = os.environ.get("BAKEHOUSE_ROOT")
    if env:
        root = Path(env).resolve()
        if not _is_project(root):
            raise UsageError(
                f"BAKEHOUSE_ROOT={env} has no images/ and packer/ folders",
                "point it at a bakehouse project checkout",
            )
        return Project(root)
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if _is_project(candidate):
            return Project(candidate)
    source_tree = Path(__file__).resolve().parents[2]
    if _is_project(source_tree):
        return Project(source_tree)
    raise UsageError(
        "not inside a bakehouse project (no images/ and packer/ folders found)",
        "cd into the project, or set BAKEHOUSE_ROOT",
    )
