"""Run the hardening controls against recorded facts, without a machine.

The verify stage writes every command the suite sent and its answer (``facts.json``, kept with
each baked version's evidence). The fixtures in tests/fixtures/hardening/<release>/ are such
records, of the web image and of its unhardened base; a ReplayHost answers the controls from
them. A command that is not in the record fails the replay (the suite changed: record again with
``bakehouse bake --image web`` and copy ``verify/facts.json`` from the new version's evidence).
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import tests.hardening
from tests.hardening.controls import Control
from tests.hardening.facts import FactError, Facts
from tests.hardening.test_patch import pending_updates

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hardening"


class NotRecorded(Exception):
    """The suite asked something the record does not hold."""


@dataclass
class Answer:
    rc: int
    stdout: str
    stderr: str


@dataclass
class Recording:
    """One machine's answers, the suite's context for it, and the package candidates."""

    answers: dict[str, dict[str, Any]]
    context: dict[str, Any]
    candidates: dict[str, Any]

    @classmethod
    def load(cls, name: str, release: str = "bookworm") -> Recording:
        folder = FIXTURES / release / name
        return cls(
            json.loads((folder / "facts.json").read_text()),
            json.loads((folder / "context.json").read_text()),
            json.loads((folder / "candidates.json").read_text()),
        )

    def copy(self) -> Recording:
        return copy.deepcopy(self)

    def command(self, marker: str) -> str:
        """The one recorded command containing ``marker``."""
        found = [c for c in self.answers if marker in c]
        if len(found) != 1:
            raise KeyError(f"{len(found)} recorded commands contain {marker!r}")
        return found[0]

    def answer(self, marker: str) -> dict[str, Any]:
        return self.answers[self.command(marker)]


class ReplayHost:
    def __init__(self, recording: Recording):
        self.recording = recording
        self.asked: set[str] = set()

    def run(self, command: str) -> Answer:
        if command not in self.recording.answers:
            raise NotRecorded(command[:120])
        self.asked.add(command)
        return Answer(**self.recording.answers[command])


@dataclass(frozen=True)
class Check:
    """One control and the test function that judges it."""

    control: Control
    function: Callable[..., None]
    role: str | None

    @property
    def id(self) -> str:
        return self.control.id


@functools.cache
def _checks() -> tuple[Check, ...]:
    return tuple(_collect())


def checks() -> list[Check]:
    """Every control of tests/hardening, in suite order."""
    return list(_checks())


@functools.cache
def _parameters(function: Callable[..., None]) -> tuple[str, ...]:
    return tuple(inspect.signature(function).parameters)


def _collect() -> list[Check]:
    out = []
    for info in pkgutil.iter_modules(tests.hardening.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"tests.hardening.{info.name}")
        for name, function in vars(module).items():
            if not name.startswith("test_") or not callable(function):
                continue
            marks = getattr(function, "pytestmark", [])
            role = next((m.args[0] for m in marks if m.name == "role"), None)
            for mark in marks:
                if mark.name == "parametrize" and mark.args[0] == "control":
                    out += [Check(c, function, role) for c in mark.args[1]]
    return out


@dataclass
class Run:
    """Outcomes of the controls over one recording (one Facts, shared like a real run)."""

    outcomes: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)


def judge(check: Check, facts: Facts, context: dict[str, Any]) -> tuple[str, str]:
    """passed, failed (the control's verdict), error (a fact could not be read), skipped, or
    crashed (anything else: a bug in the control)."""
    roles = context.get("role_checks")
    if check.role is not None and roles is not None and check.role not in roles:
        return "skipped", "role"
    kwargs: dict[str, Any] = {}
    for name in _parameters(check.function):
        if name == "control":
            kwargs[name] = check.control
        elif name == "facts":
            kwargs[name] = facts
        elif name == "context":
            kwargs[name] = context
        elif name == "pending":  # a module fixture in the suite: once per run here too
            try:
                if "_pending" not in facts.__dict__:
                    facts.__dict__["_pending"] = pending_updates(facts, context)
                kwargs[name] = facts.__dict__["_pending"]
            except FactError as exc:
                return "error", str(exc)
        else:
            raise TypeError(f"{check.id}: no replay for fixture {name!r}")
    try:
        check.function(**kwargs)
    except FactError as exc:
        return "error", str(exc)
    except (AssertionError, pytest.fail.Exception) as exc:
        return "failed", str(exc)[:300]
    except pytest.skip.Exception as exc:
        return "skipped", str(exc)
    except NotRecorded as exc:
        return "crashed", f"not recorded: {exc}"
    except Exception as exc:  # a crash is reported, never taken for a verdict
        return "crashed", f"{type(exc).__name__}: {exc}"
    return "passed", ""


def context_of(recording: Recording, tmp: Path) -> dict[str, Any]:
    context = dict(recording.context, standalone=False)
    candidates = tmp / "candidates.json"
    candidates.write_text(json.dumps(recording.candidates))
    context["candidates"] = str(candidates)
    return context


def run_all(recording: Recording, tmp: Path, only: list[Check] | None = None) -> Run:
    facts = Facts(ReplayHost(recording))
    context = context_of(recording, tmp)
    run = Run()
    for check in only if only is not None else checks():
        run.outcomes[check.id], run.messages[check.id] = judge(check, facts, context)
    return run


def commands_used(recording: Recording, tmp: Path) -> dict[str, set[str]]:
    """For each control, the recorded commands it reads (each judged on its own Facts)."""
    context = context_of(recording, tmp)
    out = {}
    for check in checks():
        host = ReplayHost(recording)
        judge(check, Facts(host), context)
        out[check.id] = host.asked
    return out
