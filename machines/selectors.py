"""Reads: what machines cost (so far, per day, per user, idle), the pool, and the latest drift report.

Live figures are computed from ``MachineEvent`` intervals with two queries (the machines overlapping the
window, with their events and sessions prefetched), so they are exact to the second. The 30-day series
read ``CostRollup`` rows, which ``rollup_costs`` refreshes every few minutes.
"""

from __future__ import annotations

import calendar
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from machines.models import (
    GONE_STATES,
    CostRollup,
    DriftFinding,
    Machine,
    MachineState,
    Provider,
    ProviderHealth,
    ReconcileReport,
)
from machines.pricing import DEFAULT_ROOTFS_GB, machine_cost, running_cost
from machines.usage import MachineUsage, Slice, machine_intervals, usage_slices, user_cost

ZERO = Decimal(0)


@dataclass(frozen=True)
class CostTotals:
    cost: Decimal = ZERO
    started_seconds: Decimal = ZERO
    idle_seconds: Decimal = ZERO
    idle_cost: Decimal = ZERO

    def __add__(self, other: CostTotals) -> CostTotals:
        return CostTotals(
            self.cost + other.cost,
            self.started_seconds + other.started_seconds,
            self.idle_seconds + other.idle_seconds,
            self.idle_cost + other.idle_cost,
        )

    @property
    def idle_minutes(self) -> Decimal:
        return self.idle_seconds / 60

    @classmethod
    def of(cls, slices: Iterable[Slice]) -> CostTotals:
        total = cls()
        for piece in slices:
            total += cls(piece.cost, piece.started_seconds, piece.idle_seconds, piece.idle_cost)
        return total


def machine_usage(machine: Machine, *, now: datetime) -> MachineUsage:
    """The pricing view of one machine (uses prefetched ``events`` and ``sessions`` when present)."""
    session = machine.latest_session
    busy_until = None
    if session is not None and session.ended_at is not None:
        reaped_idle = session.end_reason == "idle" and session.last_activity_at is not None
        busy_until = session.last_activity_at if reaped_idle else session.ended_at
    return MachineUsage(
        cpu_kind=machine.cpu_kind,
        cpus=machine.cpus,
        memory_mb=machine.memory_mb,
        region=None if Provider(machine.provider).reached_directly else machine.region,
        intervals=machine_intervals(((e.to_state, e.at) for e in machine.events.all()), now=now),
        user_id=str(session.user_id) if session is not None else None,
        busy_from=(machine.assigned_at or machine.created_at) if session is not None else None,
        busy_until=busy_until,
    )


def machine_cost_so_far(machine: Machine, now: datetime) -> Decimal:
    """What the machine has cost from its creation until ``now`` (exact; round only for display)."""
    usage = machine_usage(machine, now=now)
    return machine_cost(
        usage.intervals,
        cpu_kind=usage.cpu_kind,
        cpus=usage.cpus,
        memory_mb=usage.memory_mb,
        region=usage.region,
        rootfs_gb=DEFAULT_ROOTFS_GB,
    )


def machine_hourly_cost(machine: Machine) -> Decimal:
    """What the machine costs per hour while started (its size and region at Fly's rates)."""
    region = None if Provider(machine.provider).reached_directly else machine.region
    return running_cost(machine.cpu_kind, machine.cpus, machine.memory_mb, region, 3600)


def cost_of_user(user_id: uuid.UUID, *, start: datetime, end: datetime, now: datetime) -> CostTotals:
    """One user's machine cost between ``start`` and ``end``, exact: only the machines their sessions ran on."""
    end = min(end, now)
    if end <= start:
        return CostTotals()
    machines = machines_overlapping(start, end).filter(sessions__user_id=user_id).distinct()
    slices = (s for m in machines for s in usage_slices(machine_usage(m, now=now), start=start, end=end))
    return CostTotals.of(piece for piece in slices if piece.user_id == str(user_id))


def spend_of_users(
    user_ids: Iterable[uuid.UUID], *, start: datetime, end: datetime, now: datetime
) -> dict[str, Decimal]:
    """What each user's machines cost them between ``start`` and ``end`` (the ``cost`` of ``cost_of_user``, for
    many users in three queries), keyed by the user id as text; users whose machines cost nothing are missing."""
    end = min(end, now)
    ids = list(user_ids)
    if end <= start or not ids:
        return {}
    wanted = {str(user_id) for user_id in ids}
    spend: dict[str, Decimal] = defaultdict(Decimal)
    for machine in machines_overlapping(start, end).filter(sessions__user_id__in=ids).distinct():
        usage = machine_usage(machine, now=now)
        if usage.user_id is not None and usage.user_id in wanted:
            spend[usage.user_id] += user_cost(usage, start=start, end=end)
    return dict(spend)


def machine_uptime(machine: Machine, now: datetime) -> timedelta | None:
    """Time since it started, until it stopped or was destroyed; None when it never started."""
    if machine.started_at is None:
        return None
    end = machine.destroyed_at or (machine.stopped_at if machine.state == MachineState.STOPPED else None) or now
    return max(end - machine.started_at, timedelta(0))


def machines_overlapping(start: datetime, end: datetime) -> QuerySet[Machine]:
    return (
        Machine.objects.filter(created_at__lt=end)
        .filter(Q(destroyed_at__isnull=True) | Q(destroyed_at__gt=start))
        .prefetch_related("events", "sessions")
    )


def cost_slices(*, start: datetime, end: datetime, now: datetime) -> list[Slice]:
    end = min(end, now)
    if end <= start:
        return []
    return [
        s
        for m in machines_overlapping(start, end)
        for s in usage_slices(machine_usage(m, now=now), start=start, end=end)
    ]


def cost_between(*, start: datetime, end: datetime, now: datetime) -> CostTotals:
    return CostTotals.of(cost_slices(start=start, end=end, now=now))


def cost_by_day_and_user(*, start: datetime, end: datetime, now: datetime) -> dict[tuple[date, str | None], CostTotals]:
    grouped: dict[tuple[date, str | None], list[Slice]] = defaultdict(list)
    for piece in cost_slices(start=start, end=end, now=now):
        grouped[(piece.day, piece.user_id)].append(piece)
    return {key: CostTotals.of(pieces) for key, pieces in grouped.items()}


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def cost_today(now: datetime) -> CostTotals:
    return cost_between(start=day_start(now), end=now, now=now)


def cost_month_to_date(now: datetime) -> CostTotals:
    return cost_between(start=month_start(now), end=now, now=now)


def cost_projected_month(now: datetime) -> Decimal:
    """This month's cost if the rest of it runs at the month-to-date rate."""
    start = month_start(now)
    elapsed = Decimal(str((now - start).total_seconds()))
    if elapsed <= 0:
        return ZERO
    month_seconds = Decimal(calendar.monthrange(now.year, now.month)[1] * 86_400)
    return cost_month_to_date(now).cost * month_seconds / elapsed


def cost_daily(*, now: datetime, days: int = 30) -> list[tuple[date, CostTotals]]:
    """The last ``days`` days (oldest first, today included) from the rollups; days without rows are zero."""
    first = now.date() - timedelta(days=days - 1)
    rows = (
        CostRollup.objects.filter(day__gte=first)
        .values("day")
        .annotate(
            cost=Sum("cost"), started=Sum("started_seconds"), idle=Sum("idle_seconds"), idle_cost=Sum("idle_cost")
        )
    )
    by_day = {r["day"]: CostTotals(r["cost"], r["started"], r["idle"], r["idle_cost"]) for r in rows}
    return [(first + timedelta(days=i), by_day.get(first + timedelta(days=i), CostTotals())) for i in range(days)]


def cost_per_user(*, since: date) -> list[tuple[str | None, CostTotals]]:
    """Cost per user (None: the warm pool) since ``since``, dearest first, from the rollups."""
    rows = (
        CostRollup.objects.filter(day__gte=since)
        .values("user_id")
        .annotate(
            cost=Sum("cost"), started=Sum("started_seconds"), idle=Sum("idle_seconds"), idle_cost=Sum("idle_cost")
        )
        .order_by("-cost")
    )
    return [
        (str(r["user_id"]) if r["user_id"] else None, CostTotals(r["cost"], r["started"], r["idle"], r["idle_cost"]))
        for r in rows
    ]


def reconcile_latest() -> ReconcileReport | None:
    return ReconcileReport.objects.order_by("-at", "-id").first()


def reconcile_latest_complete() -> ReconcileReport | None:
    """The newest run that could list the provider's machines (a failed listing found nothing, not zero)."""
    return ReconcileReport.objects.filter(error="").order_by("-at", "-id").first()


def drift_findings_since(since: datetime) -> QuerySet[DriftFinding]:
    """Reconciliation findings since ``since`` (they are kept a day), newest first, with their machines."""
    return DriftFinding.objects.filter(found_at__gte=since).select_related("machine").order_by("-found_at", "-id")


def drift_findings_of(*, session_id: uuid.UUID, machine_id: uuid.UUID | None) -> QuerySet[DriftFinding]:
    """What reconciliation found about one session or its machine."""
    about = Q(session_id=session_id) | Q(machine_id=machine_id) if machine_id else Q(session_id=session_id)
    return DriftFinding.objects.filter(about).order_by("found_at", "id")


def provider_health(kind: str) -> ProviderHealth | None:
    """When ``kind`` last answered and last failed, as any process saw it; None before its first call."""
    return ProviderHealth.objects.filter(provider=kind).first()


def machine_is_running(machine_id: str | uuid.UUID) -> bool:
    """Whether a machine may still act: known, and neither being destroyed nor gone (its keys die with it)."""
    try:
        key = uuid.UUID(str(machine_id))
    except ValueError:
        return False
    ending = (*GONE_STATES, MachineState.DESTROYING)
    return Machine.objects.filter(id=key).exclude(state__in=ending).exists()
