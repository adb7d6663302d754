"""What every benchmark prints for repeated runs: the median and the spread."""

from __future__ import annotations

import statistics


def spread(values: list[float], fmt: str) -> str:
    """``median (min–max)``, each formatted with ``fmt`` (e.g. ``".2f"``)."""
    ordered = sorted(values)
    return (
        f"{format(statistics.median(ordered), fmt)} "
        f"({format(ordered[0], fmt)}–{format(ordered[-1], fmt)})"
    )
