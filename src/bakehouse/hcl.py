"""HCL2 literals and layout.

``literal`` turns any user value into an HCL expression that can only ever be a value: strings
are quoted with every quote, backslash, control character and template sequence (``${``, ``%{``)
escaped, so no input can end the string, open an interpolation or add an attribute; ``{{``,
which Packer's own template engine would run, is refused. Output of
these functions is marked :class:`Hcl`; the template environment refuses anything else.

``align`` lays attributes out the way ``packer fmt`` does (``=`` aligned within a run of
single-line attributes), so rendered files pass ``packer fmt -check``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bakehouse.errors import RenderError


class Hcl(str):
    """Text that is already a safe HCL expression."""

    __slots__ = ()


def raw(expression: str) -> Hcl:
    """An expression written by bakehouse itself (e.g. ``var.run_id``), never user input."""
    return Hcl(expression)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(text: str) -> Hcl:
    if "{{" in text:
        # Packer runs its own template engine over plugin settings: ``{{ env "X" }}`` or
        # ``{{ pwd }}`` would be run, not printed. Definitions refuse it; this is the backstop.
        raise RenderError(
            f"refusing to render {text[:80]!r}: '{{{{' would be read as a Packer template "
            "expression",
            "remove the braces from the value",
        )
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    body = "".join(out).replace("${", "$${").replace("%{", "%%{")
    return Hcl(f'"{body}"')


def literal(value: Any, indent: int = 0) -> Hcl:
    """Any plain value as an HCL expression; mappings become multi-line objects."""
    if isinstance(value, Hcl):
        return value
    if isinstance(value, bool):
        return Hcl("true" if value else "false")
    if isinstance(value, int):
        return Hcl(str(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return Hcl(repr(value))
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, Mapping):
        return obj(value, indent)
    if isinstance(value, Sequence):
        return Hcl("[" + ", ".join(literal(v, indent) for v in value) + "]")
    raise TypeError(f"cannot express {type(value).__name__} in HCL")


def obj(mapping: Mapping[str, Any], indent: int = 0) -> Hcl:
    """A multi-line HCL object with quoted keys, closing brace at ``indent`` spaces."""
    if not mapping:
        return Hcl("{}")
    pad = " " * (indent + 2)
    keys = [quote(str(k)) for k in mapping]
    width = max(len(k) for k in keys)
    lines = ["{"]
    for key, value in zip(keys, mapping.values(), strict=True):
        lines.append(f"{pad}{key.ljust(width)} = {literal(value, indent + 2)}")
    lines.append(" " * indent + "}")
    return Hcl("\n".join(lines))


_ATTR = re.compile(
    r'^(?P<indent>[ ]*)(?P<key>[A-Za-z_][A-Za-z0-9_-]*|"(?:[^"\\]|\\.)*")'
    r"[ ]*=[ ]*(?P<value>(?!=).*)$"
)


def _balanced(value: str) -> bool:
    """Whether brackets in ``value`` close on the same line (strings are skipped)."""
    depth = 0
    in_str = False
    i = 0
    while i < len(value):
        ch = value[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        i += 1
    return depth == 0


def align(text: str) -> str:
    """Align ``=`` in runs of consecutive single-line attributes at the same indentation."""
    lines = text.split("\n")
    out: list[str] = []
    group: list[re.Match[str]] = []

    def flush() -> None:
        if group:
            width = max(len(m["key"]) for m in group)
            out.extend(f"{m['indent']}{m['key'].ljust(width)} = {m['value']}" for m in group)
            group.clear()

    for line in lines:
        m = _ATTR.match(line)
        if m and _balanced(m["value"]):
            if group and group[0]["indent"] != m["indent"]:
                flush()
            group.append(m)
            continue
        flush()
        out.append(line)
    flush()
    return "\n".join(out)
