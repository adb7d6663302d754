"""Small pure parsers that validate located data and say exactly where it is wrong.

A parser is a callable ``(value, path, ctx) -> parsed``. It raises :class:`SpecError` through
``ctx.fail`` which looks up the file and line of ``path``. Records are tables of fields, each a
parser plus a default; unknown keys are always errors (a typo must never be silently ignored).
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from bakehouse.errors import Invalid, SpecError, SpecErrors
from bakehouse.load import Located, Path_, format_path
from bakehouse.names import CONTROL, CONTROL_MULTILINE

T = TypeVar("T")
Parser = Callable[[Any, Path_, "Ctx"], T]


class _Missing:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Missing()


@dataclass
class Ctx:
    doc: Located
    today: dt.date
    errors: list[SpecError] = field(default_factory=list)  # every problem found so far

    def error(self, path: Path_, message: str, hint: str | None = None) -> SpecError:
        loc = self.doc.loc(path)
        return SpecError(message, hint, file=loc.file, line=loc.line, key=format_path(path) or None)

    def fail(self, path: Path_, message: str, hint: str | None = None) -> NoReturn:
        raise self.error(path, message, hint)

    def report(self, path: Path_, message: str, hint: str | None = None) -> None:
        """A problem noted, and the check goes on (the first is raised at :meth:`done`)."""
        self.errors.append(self.error(path, message, hint))

    def attempt(self, parse: Callable[[], T]) -> tuple[bool, T | None]:
        """Run one part's parser; a problem in it is noted and the caller goes on."""
        try:
            return True, parse()
        except SpecError as exc:
            self.errors.append(exc)
        except Invalid:
            pass
        return False, None

    def done(self) -> None:
        """Every problem of the document at once (SpecErrors), or nothing."""
        if self.errors:
            raise SpecErrors(self.errors)


def type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"a number ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"text ({value!r})" if len(value) <= 40 else "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, dt.date):
        return f"a date ({value.isoformat()})"
    return type(value).__name__


def string(
    pattern: str | None = None,
    *,
    what: str = "text",
    hint: str | None = None,
    max_len: int = 256,
    allow_empty: bool = False,
    multiline: bool = False,
) -> Parser[str]:
    """Text; never with control characters (terminal escapes; newlines unless ``multiline``)
    nor ``{{``, which Packer would run as a template expression wherever the value lands."""
    rx = re.compile(pattern) if pattern else None
    unsafe = CONTROL_MULTILINE if multiline else CONTROL

    def parse(value: Any, path: Path_, ctx: Ctx) -> str:
        if not isinstance(value, str):
            ctx.fail(path, f"must be {what} (got {type_name(value)})", hint or "quote the value")
        if not value and not allow_empty:
            ctx.fail(path, "must not be empty", hint)
        if len(value) > max_len:
            ctx.fail(path, f"must be at most {max_len} characters (got {len(value)})", hint)
        if "{{" in value:
            ctx.fail(
                path,
                "must not contain '{{' (Packer would run it as a template expression)",
                "remove the braces, or write them apart: { {",
            )
        bad = unsafe.search(value)
        if bad:
            ctx.fail(
                path,
                f"must not contain control characters (found {bad.group()!r})",
                "write the value on one line, without escape sequences"
                if not multiline
                else "remove escape sequences from the text",
            )
        if rx is not None and not rx.fullmatch(value):
            ctx.fail(path, f"must be {what} (got {value!r})", hint)
        return value

    return parse


def optional(inner: Parser[T]) -> Parser[T | None]:
    def parse(value: Any, path: Path_, ctx: Ctx) -> T | None:
        return None if value is None else inner(value, path, ctx)

    return parse


def integer(lo: int, hi: int, *, unit: str = "", hint: str | None = None) -> Parser[int]:
    def parse(value: Any, path: Path_, ctx: Ctx) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.fail(
                path,
                f"must be a whole number (got {type_name(value)})",
                hint or f"e.g. {lo}",
            )
        if not lo <= value <= hi:
            sep = "" if unit in ("", "%") else " "
            ctx.fail(path, f"must be {lo}–{hi}{sep}{unit} (got {value})", hint)
        return value

    return parse


def boolean(value: Any, path: Path_, ctx: Ctx) -> bool:
    if not isinstance(value, bool):
        ctx.fail(path, f"must be true or false (got {type_name(value)})")
    return value


def enum(*choices: str) -> Parser[str]:
    def parse(value: Any, path: Path_, ctx: Ctx) -> str:
        if not isinstance(value, str) or value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
            ctx.fail(path, f"must be one of {', '.join(choices)} (got {type_name(value)})", hint)
        return value

    return parse


def date(value: Any, path: Path_, ctx: Ctx) -> dt.date:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        ctx.fail(path, f"must be a date YYYY-MM-DD (got {type_name(value)})", "e.g. 2027-03-31")
    return value


_SIZE = re.compile(r"(?P<n>[0-9]{1,9})\s*(?P<u>[KMGT]i?B?|)", re.IGNORECASE)
_MIB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def size_mib(lo: int, hi: int) -> Parser[int]:
    """A size such as ``4G``, ``512M`` or a bare number of MiB."""

    def parse(value: Any, path: Path_, ctx: Ctx) -> int:
        m = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
        if isinstance(value, int) and not isinstance(value, bool):
            mib = value
        elif m:
            unit = (m["u"][:1] or "M").upper()
            mib = int(int(m["n"]) * _MIB[unit])
        else:
            ctx.fail(path, f"must be a size like 4G or 512M (got {type_name(value)})")
        if not lo <= mib <= hi:
            ctx.fail(path, f"must be {lo}M–{hi // 1024}G (got {value})")
        return mib

    return parse


def list_of(
    item: Parser[T], *, min_len: int = 0, max_len: int = 1000, unique: bool = False
) -> Parser[tuple[T, ...]]:
    def parse(value: Any, path: Path_, ctx: Ctx) -> tuple[T, ...]:
        if not isinstance(value, list):
            ctx.fail(path, f"must be a list (got {type_name(value)})", "write items as `- item`")
        if len(value) < min_len:
            ctx.fail(path, f"must have at least {min_len} item{'s' if min_len > 1 else ''}")
        if len(value) > max_len:
            ctx.fail(path, f"must have at most {max_len} items (got {len(value)})")
        parsed = [
            ctx.attempt(functools.partial(item, v, (*path, i), ctx)) for i, v in enumerate(value)
        ]
        if not all(ok for ok, _ in parsed):
            raise Invalid
        out = tuple(typing.cast(T, v) for _, v in parsed)
        if unique:
            seen: set[Any] = set()
            for i, v in enumerate(out):
                if v in seen:
                    ctx.fail((*path, i), f"duplicate item {v!r}", "list each item once")
                seen.add(v)
        return out

    return parse


def str_map(
    key: Parser[str], value_parser: Parser[str], *, max_len: int = 50
) -> Parser[tuple[tuple[str, str], ...]]:
    def parse(value: Any, path: Path_, ctx: Ctx) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict):
            ctx.fail(path, f"must be a mapping (got {type_name(value)})")
        if len(value) > max_len:
            ctx.fail(path, f"must have at most {max_len} entries")
        return tuple(
            (key(k, (*path, k), ctx), value_parser(v, (*path, k), ctx)) for k, v in value.items()
        )

    return parse


@dataclass(frozen=True)
class F:
    """One field of a record: its parser, default and a line of help."""

    parse: Parser[Any]
    default: Any = REQUIRED
    help: str = ""


def record(
    cls: Callable[..., T],
    fields: Mapping[str, F],
    check: Callable[[T, Path_, Ctx], None] | None = None,
) -> Parser[T]:
    """A mapping with exactly these keys (python names are the keys with ``-`` as ``_``)."""

    def parse(value: Any, path: Path_, ctx: Ctx) -> T:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            ctx.fail(
                path,
                f"must be a mapping (got {type_name(value)})",
                f"expected keys: {', '.join(fields)}",
            )
        # every problem of the mapping is noted before it gives up: unknown keys, then fields
        ok = True
        for key in value:
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
                hint = (
                    f"did you mean {close[0]!r}?" if close else f"allowed here: {', '.join(fields)}"
                )
                ctx.report((*path, key), "unknown key", hint)
                ok = False
        kwargs: dict[str, Any] = {}
        for key, spec in fields.items():
            sub = (*path, key)
            if key in value:
                got, kwargs[key] = ctx.attempt(functools.partial(spec.parse, value[key], sub, ctx))
            elif spec.default is REQUIRED:
                ctx.report(sub, "missing required key", spec.help or None)
                got = False
            elif isinstance(spec.default, dict | list):
                # container defaults go through the parser, so nested records get their defaults
                got, kwargs[key] = ctx.attempt(
                    functools.partial(spec.parse, spec.default, sub, ctx)
                )
            else:
                got, kwargs[key] = True, spec.default
            ok = ok and got
        if not ok:
            raise Invalid
        result = cls(**kwargs)
        if check is not None:
            check(result, path, ctx)
        return result

    return parse
