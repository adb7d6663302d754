"""The site's pictures as inline SVG, drawn here (no script, no external asset): an image's
lineage and a bake's phase timings. Every text is escaped; every state is written out, so a
picture reads the same printed in black and white."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from markupsafe import Markup

NODE_W = 190
NODE_H = 30
COL_GAP = 60
ROW_GAP = 12
PAD = 10


@dataclass
class Node:
    key: str
    label: str
    note: str = ""  # a second, smaller line: a state, a date
    href: str | None = None
    marked: bool = False  # revoked or failed: drawn dashed, and the note says why


@dataclass
class Lineage:
    """Columns of nodes, left to right, and the edges between them (by key)."""

    columns: list[tuple[str, list[Node]]] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def column(self, title: str) -> list[Node]:
        nodes: list[Node] = []
        self.columns.append((title, nodes))
        return nodes

    def edge(self, source: str, dest: str) -> None:
        if (source, dest) not in self.edges:
            self.edges.append((source, dest))


def _text(x: float, y: float, text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.0f}" y="{y:.0f}"{attr}>{escape(text)}</text>'


def _fit(text: str, chars: int = 28) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _done(parts: list[str]) -> Markup:
    """The drawing, for a template to place as it is: every text in it went through escape()
    and every number is formatted here."""
    return Markup("".join(parts))  # noqa: S704  # nosec


def lineage(picture: Lineage, title: str) -> Markup:
    row_h = NODE_H + ROW_GAP + 10
    rows = max((len(nodes) for _, nodes in picture.columns), default=1)
    width = PAD * 2 + len(picture.columns) * (NODE_W + COL_GAP) - COL_GAP
    height = PAD * 2 + 24 + rows * row_h
    where: dict[str, tuple[float, float]] = {}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (heading, nodes) in enumerate(picture.columns):
        x = float(PAD + i * (NODE_W + COL_GAP))
        parts.append(_text(x, PAD + 12, heading, "heading"))
        for j, node in enumerate(nodes):
            where[node.key] = (x, float(PAD + 24 + j * row_h))
    for source, dest in picture.edges:
        if source not in where or dest not in where:
            continue
        (x1, y1), (x2, y2) = where[source], where[dest]
        sx, sy, dx, dy = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
        mid = (sx + dx) / 2
        parts.append(
            f'<path class="edge" d="M{sx:.0f},{sy:.0f} C{mid:.0f},{sy:.0f} '
            f'{mid:.0f},{dy:.0f} {dx:.0f},{dy:.0f}"/>'
        )
    for _, nodes in picture.columns:
        for node in nodes:
            x, y = where[node.key]
            cls = "node marked" if node.marked else "node"
            box = [
                f'<rect class="{cls}" x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" '
                f'height="{NODE_H}" rx="4"/>',
                _text(x + 6, y + 13, _fit(node.label)),
            ]
            if node.note:
                box.append(_text(x + 6, y + 26, _fit(node.note, 32), "note"))
            group = "".join(box)
            if node.href:
                group = f'<a href="{escape(node.href)}">{group}</a>'
            parts.append(f"<g>{group}</g>")
    parts.append("</svg>")
    return _done(parts)


def bars(values: list[tuple[str, float]], unit: str = "s", title: str = "") -> Markup:
    """A horizontal bar chart: one bar per (label, value), the value written at its end."""
    label_w, bar_w, row_h = 230, 360, 20
    top = max((v for _, v in values), default=0.0) or 1.0
    height = PAD * 2 + row_h * len(values)
    width = label_w + bar_w + 80
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(values):
        y = PAD + i * row_h
        length = max(1.0, bar_w * value / top)
        parts.append(_text(0, y + 14, _fit(label, 34)))
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{length:.0f}" '
            f'height="{row_h - 6}"/>'
        )
        parts.append(_text(label_w + length + 6, y + 14, f"{value:.1f} {unit}"))
    parts.append("</svg>")
    return _done(parts)
