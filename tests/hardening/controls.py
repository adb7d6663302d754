"""Control metadata: every hardening test is parametrized by one of these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    ref: str
    args: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return self.id


def ids(control: Control) -> str:
    return control.id
