"""What a bake is made of, as content keys: the inputs fingerprint, the hardening suite's hash and
the git commit. Everyone imports this module and it imports nothing of bakehouse's but the
process gateway, so bake, nightly and the targets share one definition without cycles."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bakehouse import proc
from bakehouse.errors import BakehouseError
from bakehouse.spec import ImageSpec

SUITE = Path("tests") / "hardening"


def suite_hash(root: Path) -> str:
    """The hardening suite's content: a changed control is a changed input."""
    digest = hashlib.sha256()
    for path in sorted((root / SUITE).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fingerprint(
    spec: ImageSpec, template: str, scripts_dir: Path, base_id: str, suite: str = ""
) -> str:
    """A content key of every input of a bake: the resolved definition, the rendered template,
    the base image (before patching: patches are tracked as pending updates), every script and
    the hardening suite. Patch-aware rebuilds compare it with the newest image's."""
    digest = hashlib.sha256()
    digest.update(json.dumps(spec.to_dict() | {"files": None}, sort_keys=True).encode())
    digest.update(template.encode())
    digest.update(base_id.encode())
    digest.update(suite.encode())
    for script in sorted(scripts_dir.glob("*.sh")):
        digest.update(script.name.encode() + b"\0" + script.read_bytes())
    return digest.hexdigest()


def git_commit(root: Path) -> str:
    """HEAD of the project (``-dirty`` when tracked files changed), or ``unknown``."""
    try:
        head = proc.run(["git", "-C", str(root), "rev-parse", "HEAD"], timeout=10)
        dirty = proc.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"], timeout=10
        )
    except BakehouseError:
        return "unknown"
    if not head.ok:
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
