"""The only YAML reader: image definition files → plain data with a line for every key.

Each file is composed into YAML nodes (never arbitrary Python objects), converted to dicts, lists
and scalars, and every key's position is kept in a side table keyed by its path, so that
validation can say ``images/web.yaml:14: roll.min_healthy: …``. ``extends:`` chains are resolved
here: ``_defaults.yaml`` first, then each parent, then the image itself.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bakehouse.errors import SpecError
from bakehouse.names import NAME_RE

try:  # the C loader is several times faster; fall back quietly where libyaml is missing
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on the build of PyYAML
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

Path_ = tuple[str | int, ...]
DEFAULTS = "_defaults"
MAX_NODES = 20_000  # guards against alias bombs ("billion laughs")
MAX_DEPTH = 64
# lists under these keys add up along an ``extends:`` chain instead of replacing each other
ADDITIVE: frozenset[Path_] = frozenset({("packages",), ("provision",), ("hardening", "waivers")})


@dataclass(frozen=True)
class Loc:
    file: str
    line: int


@dataclass
class Located:
    """Plain data (dicts, lists, scalars) plus the position of every key and item."""

    data: dict[str, Any]
    locs: dict[Path_, Loc] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def loc(self, path: Path_) -> Loc:
        """The position of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.locs:
                return self.locs[p]
            p = p[:-1]
        return self.locs.get((), Loc(self.files[-1] if self.files else "?", 1))


def format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


class _Converter:
    def __init__(self, file: str):
        self.file = file
        self.locs: dict[Path_, Loc] = {}
        self.count = 0
        self.scalars = yaml.constructor.SafeConstructor()

    def err(self, node: yaml.Node, path: Path_, msg: str, hint: str | None = None) -> SpecError:
        return SpecError(
            msg, hint, file=self.file, line=node.start_mark.line + 1, key=format_path(path) or None
        )

    def convert(self, node: yaml.Node, path: Path_, depth: int = 0) -> Any:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise self.err(
                node,
                path,
                "definition is too large or too deeply nested",
                "image definitions are small files; check for recursive YAML aliases",
            )
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.err(
                        key_node,
                        path,
                        "YAML merge keys (<<) are not supported",
                        "share settings with `extends:` instead",
                    )
                if (
                    not isinstance(key_node, yaml.ScalarNode)
                    or key_node.tag != "tag:yaml.org,2002:str"
                ):
                    raise self.err(
                        key_node,
                        path,
                        "keys must be plain strings",
                        "quote the key",
                    )
                key = str(key_node.value)
                sub = (*path, key)
                if key in out:
                    first = self.locs[sub].line
                    raise self.err(
                        key_node,
                        sub,
                        f"duplicate key (first set on line {first})",
                        "keep one of them",
                    )
                self.locs[sub] = Loc(self.file, key_node.start_mark.line + 1)
                out[key] = self.convert(value_node, sub, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for i, item in enumerate(node.value):
                sub = (*path, i)
                self.locs[sub] = Loc(self.file, item.start_mark.line + 1)
                items.append(self.convert(item, sub, depth + 1))
            return items
        assert isinstance(node, yaml.ScalarNode)
        try:
            value = self.scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            raise self.err(
                node,
                path,
                f"cannot read value {node.value!r} ({exc.__class__.__name__})",
                "quote it if it is meant as text",
            ) from None
        if isinstance(value, bytes):
            raise self.err(node, path, "binary values are not allowed")
        if isinstance(value, dt.datetime):
            return value  # validated (and refused where a date is wanted) by the schema
        return value


def read_yaml(path: Path, display: str) -> Located:
    """Read one YAML file into a :class:`Located` mapping; errors name ``display`` and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            "no such file", "list the images with `invoke images.list`", file=display
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read: {exc}", file=display) from None
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(
            f"invalid YAML: {problem}",
            "check indentation and quoting around this line",
            file=display,
            line=line,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", file=display) from None
    except RecursionError:
        raise SpecError("invalid YAML: nested too deeply", file=display) from None
    conv = _Converter(display)
    if node is None:
        return Located({}, {(): Loc(display, 1)}, (display,))
    if not isinstance(node, yaml.MappingNode):
        raise SpecError(
            "the top level must be a mapping of keys to values",
            "start the file with `description: …`",
            file=display,
            line=node.start_mark.line + 1,
        )
    data = conv.convert(node, ())
    conv.locs[()] = Loc(display, 1)
    return Located(data, conv.locs, (display,))


def merge(parent: Located, child: Located) -> Located:
    """Deep-merge ``child`` over ``parent``.

    Mappings merge, lists in ADDITIVE add up, everything else is replaced by the child."""
    locs = dict(parent.locs)

    def walk(p: Any, c: Any, path: Path_) -> Any:
        if isinstance(p, dict) and isinstance(c, dict):
            out = dict(p)
            for key, value in c.items():
                sub = (*path, key)
                out[key] = walk(p[key], value, sub) if key in p else _take(value, sub)
                if sub in child.locs:
                    locs[sub] = child.locs[sub]
            return out
        if path in ADDITIVE and isinstance(p, list) and isinstance(c, list):
            offset = len(p)
            for i in range(len(c)):
                for sub, loc in _sub_locs(child.locs, (*path, i)):
                    locs[(*path, offset + i, *sub[len(path) + 1 :])] = loc
            return [*p, *c]
        return _take(c, path)

    def _take(value: Any, path: Path_) -> Any:
        for key in [k for k in locs if k[: len(path)] == path and len(k) > len(path)]:
            del locs[key]
        locs.update(_sub_locs(child.locs, path))
        return value

    data = walk(parent.data, child.data, ())
    locs[()] = child.locs.get((), parent.loc(()))
    return Located(data, locs, (*parent.files, *child.files))


def _sub_locs(locs: dict[Path_, Loc], path: Path_) -> Iterator[tuple[Path_, Loc]]:
    n = len(path)
    for key, loc in locs.items():
        if key[:n] == path:
            yield key, loc


class ImageFiles:
    """The image definitions in one folder, and their ``extends:`` resolution."""

    def __init__(self, root: Path, display_root: str = "images"):
        self.root = root
        self.display_root = display_root
        self._cache: dict[str, Located] = {}

    def display(self, name: str) -> str:
        return f"{self.display_root}/{name}.yaml"

    def names(self) -> list[str]:
        """Every image name (file stem) in the folder; ``_``-prefixed files are not images."""
        if not self.root.is_dir():
            raise SpecError(
                "no images folder",
                "run from the project root or pass --images DIR",
                file=self.display_root,
            )
        return sorted(p.stem for p in self.root.glob("*.yaml") if not p.stem.startswith("_"))

    def raw(self, name: str) -> Located:
        if name not in self._cache:
            self._cache[name] = read_yaml(self.root / f"{name}.yaml", self.display(name))
        return self._cache[name]

    def resolve(self, name: str) -> Located:
        """The image's data with its whole ``extends:`` chain merged in, defaults first."""
        chain = self._chain(name, [])
        merged: Located | None = None
        defaults = self.root / f"{DEFAULTS}.yaml"
        if defaults.exists() and name != DEFAULTS:
            merged = self.raw(DEFAULTS)
        for item in chain:
            doc = self.raw(item)
            merged = doc if merged is None else merge(merged, doc)
        assert merged is not None
        merged.data.pop("extends", None)
        return Located(merged.data, merged.locs, merged.files)

    def _chain(self, name: str, seen: list[str]) -> list[str]:
        doc = self.raw(name)
        parents = doc.data.get("extends", [])
        if isinstance(parents, str):
            parents = [parents]
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise SpecError(
                "must be an image name or a list of image names",
                "e.g. `extends: base`",
                file=self.display(name),
                line=doc.loc(("extends",)).line,
                key="extends",
            )
        order: list[str] = []
        for i, parent in enumerate(parents):
            line = doc.loc(("extends", i) if ("extends", i) in doc.locs else ("extends",)).line
            if parent == name or parent in seen:
                cycle = " → ".join([*seen, name, parent])
                raise SpecError(
                    f"cycle in extends: {cycle}",
                    "an image cannot extend itself",
                    file=self.display(name),
                    line=line,
                    key="extends",
                )
            if not re.fullmatch(NAME_RE, parent) and parent != DEFAULTS:
                raise SpecError(
                    f"{parent!r} is not an image name",
                    "an image name is lower-case a-z, 0-9 and -, e.g. `extends: base`; "
                    "definitions are read from the images folder only",
                    file=self.display(name),
                    line=line,
                    key="extends",
                )
            if parent == DEFAULTS:
                raise SpecError(
                    "_defaults is applied to every image; do not extend it",
                    "remove it from extends",
                    file=self.display(name),
                    line=line,
                    key="extends",
                )
            if not (self.root / f"{parent}.yaml").is_file():
                raise SpecError(
                    f"unknown image {parent!r}",
                    f"known images: {', '.join(self.names())}",
                    file=self.display(name),
                    line=line,
                    key="extends",
                )
            for item in self._chain(parent, [*seen, name]):
                if item not in order:
                    order.append(item)
        order.append(name)
        return order
