"""Tiny SVG chart geometry for the templates: numbers in, coordinates and path strings out.

The templates draw the ``<svg>``; this only scales values into the plot box, so a chart needs no
third-party library and no script.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 900
HEIGHT = 180
PAD_LEFT = 84  # room for a y label such as $0.025 in the larger phone font
PAD_BOTTOM = 20


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    top: float
    bars: list[Bar]
    lines: dict[str, str]
    ticks: list[tuple[float, str]]
    baseline: float
    left: int = PAD_LEFT


def nice_top(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    return next(round(step * scale, 10) for step in (1, 2, 5, 10) if step * scale >= value * (1 - 1e-9))


def _y(value: float, top: float) -> float:
    plot = HEIGHT - PAD_BOTTOM
    return round(plot - (value / top) * (plot - 8), 1)


def bar_chart(values: Sequence[float], labels: Sequence[str], *, unit: str = "", min_top: float = 0) -> Chart:
    """One bar per value, labelled, on a shared round axis (at least ``min_top`` high)."""
    top = nice_top(max(*values, min_top) if values else min_top)
    slot = (WIDTH - PAD_LEFT) / max(len(values), 1)
    bars = []
    for index, (value, label) in enumerate(zip(values, labels, strict=True)):
        y = _y(value, top)
        x = round(PAD_LEFT + index * slot + slot * 0.1, 1)
        bars.append(Bar(x, y, round(slot * 0.8, 1), round(HEIGHT - PAD_BOTTOM - y, 1), value, label))
    return Chart(WIDTH, HEIGHT, top, bars, {}, _ticks(top, unit), HEIGHT - PAD_BOTTOM)


def line_path(values: Sequence[float], top: float, *, width: int = WIDTH) -> str:
    """An SVG path ``d`` through ``values`` spread evenly across the plot."""
    if not values:
        return ""
    step = (width - PAD_LEFT) / max(len(values) - 1, 1)
    points = [f"{round(PAD_LEFT + i * step, 1)},{_y(v, top)}" for i, v in enumerate(values)]
    return "M" + " L".join(points)


def line_chart(series: dict[str, Sequence[float]], *, unit: str = "", width: int = WIDTH) -> Chart:
    """Several lines on a shared round axis (``width`` in viewBox units: narrower for half-width cards)."""
    top = nice_top(max((max(values, default=0) for values in series.values()), default=0))
    lines = {name: line_path(values, top, width=width) for name, values in series.items()}
    return Chart(width, HEIGHT, top, [], lines, _ticks(top, unit), HEIGHT - PAD_BOTTOM)


def _ticks(top: float, unit: str) -> list[tuple[float, str]]:
    return [(_y(top * f, top), f"{unit}{_fmt(top * f)}") for f in (0, 0.5, 1)]


def _fmt(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.0f}"
