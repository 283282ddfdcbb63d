"""Figures beside their targets: ``bench/results/latest.json`` and the markdown table ``latest.md``.

A figure is either measured (``value`` set) or explicitly not measured (``value`` None and a ``note``
saying why); nothing is ever filled in by assumption.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

RESULTS_DIR = Path(__file__).resolve().parent / "results"
GROUPS = ("time_to_preview", "edit_to_ack", "fanout", "api", "sweep", "rss", "seed_section_11")
Comparison = Literal["<=", ">=", "<", ">"]


@dataclass
class Figure:
    group: str
    name: str
    value: float | None
    unit: str
    target: float | None = None
    comparison: Comparison = "<="
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None or math.isnan(self.value):
            return None
        return {
            "<=": self.value <= self.target,
            ">=": self.value >= self.target,
            "<": self.value < self.target,
            ">": self.value > self.target,
        }[self.comparison]

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("group")
        data.pop("name")
        data["met"] = self.met
        return data


@dataclass
class Results:
    mode: str
    figures: list[Figure] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def as_json(self) -> dict[str, Any]:
        grouped: dict[str, Any] = {"meta": {"mode": self.mode, **environment(), **self.meta}}
        for group in GROUPS:
            grouped[group] = {f.name: f.as_json() for f in self.figures if f.group == group}
        return grouped

    def write(self, directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        json_path, md_path = directory / "latest.json", directory / "latest.md"
        json_path.write_text(json.dumps(self.as_json(), indent=2) + "\n")
        md_path.write_text(markdown_table(self.figures, self.as_json()["meta"]))
        return json_path, md_path


def calibration_ms(rounds: int = 5) -> float:
    """How fast this machine is now: the best of ``rounds`` runs of a fixed pure-Python workload, in ms (54 ms on the
    shared 2-core machine on 2026-12-02 at 09:40, an hour when its bulk insert took 1.9 times the morning's). A
    shared machine's speed varies by half from hour to hour; runs are compared by this, measured at the start and
    the end of each."""
    best = math.inf
    for _ in range(rounds):
        began = time.perf_counter()
        sum(i * i % 7 for i in range(400_000))
        best = min(best, time.perf_counter() - began)
    return round(best * 1000, 1)


def environment() -> dict[str, Any]:
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "database": "postgresql" if os.environ.get("DATABASE_URL") else "sqlite",
        "redis": bool(os.environ.get("REDIS_URL")),
    }


def _calibration_sentence(meta: dict[str, Any]) -> str:
    start, end = meta.get("calibration_ms_start"), meta.get("calibration_ms_end")
    if start is None or end is None:
        return ""
    return f" A fixed Python workload took {start} ms at the start and {end} ms at the end (the machine's speed)."


def _format(value: float | None) -> str:
    if value is None:
        return "not measured"
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


def _verdict(figure: Figure) -> str:
    return {True: "met", False: "**not met**", None: "—"}[figure.met]


def markdown_table(figures: Iterable[Figure], meta: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark results ({meta.get('mode')}, {meta.get('measured_at')})",
        "",
        f"{meta.get('cpus')} CPUs, load {meta.get('load_average_1m')} at the end, database {meta.get('database')}, "
        f"Redis {'on' if meta.get('redis') else 'off'}." + _calibration_sentence(meta),
        "",
        "| group | figure | value | unit | target | verdict | note |",
        "| --- | --- | ---: | --- | --- | --- | --- |",
    ]
    for f in figures:
        target = "" if f.target is None else f"{f.comparison} {_format(f.target)}"
        note = f.note.replace("|", "/").replace("\n", " ")
        lines.append(f"| {f.group} | {f.name} | {_format(f.value)} | {f.unit} | {target} | {_verdict(f)} | {note} |")
    return "\n".join(lines) + "\n"


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def not_measured(group: str, name: str, unit: str, reason: str, **target: Any) -> Figure:
    return Figure(group=group, name=name, value=None, unit=unit, note=f"not measured: {reason}", **target)
