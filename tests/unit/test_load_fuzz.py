"""The loader only ever raises the project's own error type, whatever YAML it is fed."""

from __future__ import annotations

import contextlib
import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bakehouse.errors import SpecError
from bakehouse.spec import Catalog
from tests.conftest import MINIMAL_DEFAULTS, TODAY

REAL_WEB = """\
description: nginx web front end
extends: base
packages: [nginx-light]
provision:
  - script: web.sh
hardening:
  waivers:
    - id: sshd-48
      reason: legacy load balancer health checks
      expires: 2027-01-01
roll:
  selector: {bakehouse:role: web}
  min_healthy: 90
  checkpoints: [20, 50]
targets:
  local: {disk_size: 4G, memory: 1G, cpus: 2}
  aws: {regions: [eu-west-1], share: {accounts: ['123456789012']}}
"""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.dates(),
    st.sampled_from(["2027-02-30", "0x1F", "~", "yes", "1e9"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(string.ascii_lowercase + "_.<", max_size=12), inner, max_size=4),
    ),
    max_leaves=12,
)
KEYS = [
    "description",
    "extends",
    "packages",
    "provision",
    "hardening",
    "roll",
    "targets",
    "base",
    "publish",
    "retention",
    "patch",
    "name",
]


def _load(tmp_path, text: str) -> None:  # type: ignore[no-untyped-def]
    images = tmp_path / "images"
    scripts = tmp_path / "scripts"
    images.mkdir(exist_ok=True)
    scripts.mkdir(exist_ok=True)
    (scripts / "web.sh").write_text("")
    (images / "_defaults.yaml").write_text(MINIMAL_DEFAULTS)
    (images / "base.yaml").write_text("description: base\n")
    (images / "web.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(SpecError):
        Catalog(images, scripts).load("web", TODAY)


fuzz = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@fuzz
@given(st.text(max_size=300))
def test_random_text(tmp_path, text: str) -> None:  # type: ignore[no-untyped-def]
    _load(tmp_path, text)


@fuzz
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
def test_random_structures(tmp_path, data) -> None:  # type: ignore[no-untyped-def]
    _load(tmp_path, yaml.safe_dump(data))


@fuzz
@given(st.data())
def test_mutated_real_definition(tmp_path, data) -> None:  # type: ignore[no-untyped-def]
    text = REAL_WEB
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = data.draw(
            st.sampled_from(
                [
                    ":",
                    "- ",
                    "  ",
                    "\n",
                    "{",
                    "[",
                    "&a",
                    "*a",
                    "!!binary",
                    "<<: ",
                    "'",
                    "\t",
                    "99999",
                    "null",
                    "-1",
                    "\x00",
                    "é",
                    "2026-13-01",
                ]
            )
        )
        if op == "insert":
            text = text[:pos] + chunk + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + len(chunk) :]
        else:
            text = text[:pos] + chunk + text[pos + 1 :]
    _load(tmp_path, text)


def test_alias_bomb_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    lines.append("description: *a8")
    images = tmp_path / "images"
    images.mkdir()
    (images / "web.yaml").write_text("\n".join(lines) + "\n")
    try:
        Catalog(images).load("web", TODAY)
    except SpecError as exc:
        assert "too large" in exc.message
    else:  # pragma: no cover - the point of the test
        raise AssertionError("alias bomb was accepted")
