"""Machine cost over time windows, from a machine's recorded state changes: pure data in and out.

A machine's life is its ``MachineEvent`` rows: each state holds from its event to the next one (the
last one to ``now`` unless the machine is gone). ``machines.pricing`` prices each interval, so the
dashboard bills exactly what the cost model bills.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from machines.pricing import COMPUTE_STATES, DEFAULT_ROOTFS_GB, Interval, machine_cost

GONE = frozenset({"destroyed", "failed"})


@dataclass(frozen=True)
class MachineLife:
    machine_id: uuid.UUID
    cpu_kind: str
    cpus: int
    memory_mb: int
    region: str
    events: Sequence[tuple[str, datetime]]
    user_id: uuid.UUID | None = None
    last_activity_at: datetime | None = None
    extra: dict[str, object] = field(default_factory=dict, compare=False)


def intervals(events: Sequence[tuple[str, datetime]], *, now: datetime) -> list[Interval]:
    """``(state, start, end)`` for each recorded state; a gone machine's last state costs nothing more."""
    spans: list[Interval] = [(state, start, end) for (state, start), (_, end) in pairwise(events)]
    if events and events[-1][0] not in GONE:
        spans.append((events[-1][0], events[-1][1], max(events[-1][1], now)))
    return spans


def clip(spans: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    """The parts of ``spans`` inside ``[start, end)``."""
    clipped = []
    for state, began, ended in spans:
        lo, hi = max(began, start), min(ended, end)
        if hi > lo:
            clipped.append((state, lo, hi))
    return clipped


def spans_cost(life: MachineLife, spans: Iterable[Interval]) -> Decimal:
    return machine_cost(
        spans,
        cpu_kind=life.cpu_kind,
        cpus=life.cpus,
        memory_mb=life.memory_mb,
        region=life.region if life.region != "local" else None,
        rootfs_gb=DEFAULT_ROOTFS_GB,
    )


def life_cost(life: MachineLife, *, start: datetime, end: datetime, now: datetime) -> Decimal:
    return spans_cost(life, clip(intervals(life.events, now=now), start, end))


def started_seconds(spans: Iterable[Interval]) -> float:
    return sum((end - start).total_seconds() for state, start, end in spans if state in COMPUTE_STATES)


def idle_seconds(life: MachineLife, spans: Sequence[Interval], *, now: datetime) -> float:
    """Started time after the session's last recorded activity: paid for, and used by nobody."""
    if life.last_activity_at is None:
        return 0.0
    return started_seconds(clip(spans, life.last_activity_at, now))


def day_starts(now: datetime, days: int) -> list[datetime]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def daily_costs(lives: Iterable[MachineLife], *, now: datetime, days: int = 30) -> list[tuple[date, Decimal]]:
    """Cost per UTC day for the last ``days`` days, oldest first (today so far last)."""
    starts = day_starts(now, days)
    totals = [Decimal(0)] * days
    for life in lives:
        spans = intervals(life.events, now=now)
        for index, start in enumerate(starts):
            totals[index] += spans_cost(life, clip(spans, start, start + timedelta(days=1)))
    return [(start.date(), total) for start, total in zip(starts, totals, strict=True)]


def projected_month(month_to_date: Decimal, *, now: datetime) -> Decimal:
    """Month to date extended at the same average pace to the month's end."""
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    elapsed = (now - start).total_seconds()
    if elapsed <= 0:
        return month_to_date
    return month_to_date * Decimal((end - start).total_seconds()) / Decimal(elapsed)
