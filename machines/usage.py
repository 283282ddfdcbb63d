"""What a machine's life cost, sliced by day, by payer, and into busy and idle time: pure data in and out.

A machine's ``MachineEvent`` rows give ``(state, start, end)`` intervals (``machine_intervals``). The
slices split those intervals at day boundaries (UTC) and at the edges of the time the machine served
its session, so that every slice has one day, one payer and one kind:

- before the machine was assigned (the warm pool) the cost is the pool's (``user_id`` None);
- started time outside the *busy* window (from assignment to the session's end, or to its last
  activity when it was reaped for idleness) is **idle**: paid for, serving nobody.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import pairwise

from machines.pricing import COMPUTE_STATES, DEFAULT_ROOTFS_GB, Interval, machine_cost

ZERO = Decimal(0)


@dataclass(frozen=True)
class MachineUsage:
    cpu_kind: str
    cpus: int
    memory_mb: int
    region: str | None
    intervals: Sequence[Interval]
    user_id: str | None = None
    busy_from: datetime | None = None
    busy_until: datetime | None = None  # None: still busy


@dataclass(frozen=True)
class Slice:
    day: date
    user_id: str | None
    cost: Decimal
    started_seconds: Decimal
    idle_seconds: Decimal
    idle_cost: Decimal


def machine_intervals(events: Iterable[tuple[str, datetime]], *, now: datetime) -> list[Interval]:
    """``(to_state, at)`` events in order → ``(state, start, end)``; the last state lasts until ``now``."""
    ordered = list(events)
    if not ordered:  # a machine row whose events are gone (or not yet written) has cost nothing we know of
        return []
    intervals: list[Interval] = []
    for (state, start), (_, end) in zip(ordered, [*ordered[1:], ("", now)], strict=True):
        if end > start:
            intervals.append((state, start, end))
    return intervals


def user_cost(usage: MachineUsage, *, start: datetime, end: datetime) -> Decimal:
    """What the machine cost its session's user within ``[start, end)``: the sum of ``usage_slices`` that are the
    user's, computed without cutting by day (the budget check runs it for every machine of a month each minute)."""
    if usage.busy_from is None:
        return ZERO
    lo_bound = max(start, usage.busy_from)
    clipped = [(state, max(lo, lo_bound), min(hi, end)) for state, lo, hi in usage.intervals]
    return machine_cost(
        [(state, lo, hi) for state, lo, hi in clipped if hi > lo],
        cpu_kind=usage.cpu_kind,
        cpus=usage.cpus,
        memory_mb=usage.memory_mb,
        region=usage.region,
        rootfs_gb=DEFAULT_ROOTFS_GB,
    )


def usage_slices(usage: MachineUsage, *, start: datetime, end: datetime) -> Iterator[Slice]:
    """The usage within ``[start, end)``, cut into slices of one day, one payer and one kind."""
    cuts = [c for c in (usage.busy_from, usage.busy_until) if c is not None]
    for state, lo, hi in usage.intervals:
        lo, hi = max(lo, start), min(hi, end)
        if hi <= lo:  # outside the window: clipped, it would be the gap between it and the window, inverted
            continue
        for piece_lo, piece_hi in _split(lo, hi, cuts):
            yield _slice(usage, str(state), piece_lo, piece_hi)


def _split(lo: datetime, hi: datetime, cuts: Sequence[datetime]) -> Iterator[tuple[datetime, datetime]]:
    points = sorted({lo, hi, *(c for c in cuts if lo < c < hi), *_midnights(lo, hi)})
    for a, b in pairwise(points):
        if b > a:
            yield a, b


def _midnights(lo: datetime, hi: datetime) -> Iterator[datetime]:
    day = datetime.combine(lo.date(), time(), tzinfo=lo.tzinfo) + timedelta(days=1)
    while day < hi:
        yield day
        day += timedelta(days=1)


def _slice(usage: MachineUsage, state: str, lo: datetime, hi: datetime) -> Slice:
    cost = machine_cost(
        [(state, lo, hi)],
        cpu_kind=usage.cpu_kind,
        cpus=usage.cpus,
        memory_mb=usage.memory_mb,
        region=usage.region,
        rootfs_gb=DEFAULT_ROOTFS_GB,
    )
    started = state in COMPUTE_STATES
    seconds = Decimal(str((hi - lo).total_seconds())) if started else ZERO
    assigned = usage.busy_from is not None and lo >= usage.busy_from
    busy = assigned and (usage.busy_until is None or hi <= usage.busy_until)
    idle = started and not busy
    return Slice(
        day=lo.date(),
        user_id=usage.user_id if assigned else None,
        cost=cost,
        started_seconds=seconds,
        idle_seconds=seconds if idle else ZERO,
        idle_cost=cost if idle else ZERO,
    )
