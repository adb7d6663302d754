"""The pinned, hashed requirements that ./run installs from: every dependency of
pyproject.toml is pinned in its lock, every pinned line carries sha256 hashes, and no lock
names a machine's own index or folder."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.conftest import ROOT

LOCKS = ROOT / "requirements"
PIN = re.compile(
    r"^([A-Za-z0-9_.-]+)==(\S+) \\\n((?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", re.M
)


def name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0]).lower()


def pinned(lock: str) -> dict[str, str]:
    text = (LOCKS / lock).read_text()
    return {name(m[1]): m[2] for m in PIN.finditer(text)}


@pytest.mark.parametrize("lock", ["build.lock", "run.lock", "dev.lock"])
def test_every_pinned_line_has_hashes_and_nothing_local(lock: str) -> None:
    text = (LOCKS / lock).read_text()
    pins = [line for line in text.splitlines() if "==" in line and not line.startswith("#")]
    assert pins and len(pins) == len(PIN.findall(text)), "a pinned line without its hashes"
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"^-|file:|/opt/|/tmp/|/home/", body, re.M), "a machine's own path"


def test_every_dependency_is_in_its_lock() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    run, dev = pinned("run.lock"), pinned("dev.lock")
    for requirement in project["project"]["dependencies"]:
        assert name(requirement) in run and name(requirement) in dev, requirement
    for requirement in project["project"]["optional-dependencies"]["dev"]:
        assert name(requirement) in dev, requirement
    assert {k: v for k, v in dev.items() if k in run} == run, "dev and run pin different versions"
    build = pinned("build.lock")
    assert {"pip", "setuptools", "wheel"} <= set(build)
