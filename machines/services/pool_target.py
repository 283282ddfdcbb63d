"""The warm pool's target read from the database and the settings: demand, time to provision, price.

``machines.pool_sizing`` does the arithmetic; this module gathers its inputs. Demand is the machines
given to a session (``assigned_at``: at creation for a cold one, at the claim for a warm one), so the
machines app counts session creates without knowing about sessions; a claim served warm is the
``claimed_by_session`` event the claim writes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings

from machines.models import Machine, MachineEvent, MachineState, Provider
from machines.pool_sizing import PoolDemand, PoolPolicy, PoolTarget, hit_rate, pool_target
from machines.pricing import DEFAULT_ROOTFS_GB, running_cost, stopped_cost

PROVISION_SAMPLES = 20
POOL_CPU_KIND, POOL_CPUS = "shared", 1  # what machine_prepare asks the provider for


def pool_bounds() -> tuple[int, int]:
    """(floor, ceiling): ``WARM_POOL_MIN`` and ``WARM_POOL_MAX``, or the old fixed ``WARM_POOL_SIZE`` for both."""
    floor = settings.WARM_POOL_MIN if settings.WARM_POOL_MIN >= 0 else settings.WARM_POOL_SIZE
    ceiling = settings.WARM_POOL_MAX if settings.WARM_POOL_MAX >= 0 else max(settings.WARM_POOL_SIZE, floor)
    return floor, ceiling


def pool_enabled() -> bool:
    """Whether any warm machine may exist (the ceiling is above zero)."""
    return pool_bounds()[1] > 0


def pool_budget() -> Decimal | None:
    """``POOL_BUDGET_USD_PER_HOUR`` as money; None when empty. Raises ValueError on a malformed value."""
    raw = settings.POOL_BUDGET_USD_PER_HOUR
    if raw in ("", None):
        return None
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"POOL_BUDGET_USD_PER_HOUR must be a number of dollars, got {raw!r}") from None


def pool_machine_hourly_cost(*, memory_mb: int, suspended: bool = False) -> Decimal:
    """One pool machine for an hour: compute and RAM when started, only its root filesystem when suspended.

    Priced as the cost pages price it (``machines.selectors``): local machines at the base region's rates.
    """
    if suspended:
        return stopped_cost(DEFAULT_ROOTFS_GB, 3600)
    region = None if Provider(settings.MACHINE_PROVIDER).reached_directly else settings.FLY_REGION
    return running_cost(POOL_CPU_KIND, POOL_CPUS, memory_mb, region, 3600)


def pool_policy(*, memory_mb: int) -> PoolPolicy:
    """The settings as a policy; raises ValueError when they contradict each other."""
    floor, ceiling = pool_bounds()
    return PoolPolicy(
        floor=floor,
        ceiling=ceiling,
        budget_usd_per_hour=pool_budget(),
        machine_usd_per_hour=pool_machine_hourly_cost(memory_mb=memory_mb),
        headroom=settings.WARM_POOL_HEADROOM_PERCENT / 100,
    )


def pool_demand(*, now: datetime) -> PoolDemand:
    """Creates in the burst and demand windows, and the recent time to provision."""
    burst, window = settings.POOL_BURST_WINDOW_SECONDS, settings.POOL_DEMAND_WINDOW_SECONDS
    return PoolDemand(
        burst_creates=_assigned_since(now - timedelta(seconds=burst), now),
        burst_seconds=burst,
        window_creates=_assigned_since(now - timedelta(seconds=window), now),
        window_seconds=window,
        provision_seconds=provision_seconds(),
    )


def _assigned_since(start: datetime, now: datetime) -> int:
    return Machine.objects.filter(
        provider=settings.MACHINE_PROVIDER, assigned_at__gte=start, assigned_at__lte=now
    ).count()


def provision_seconds() -> float:
    """How long a new pool machine takes to be useful: at least ``POOL_PROVISION_SECONDS_MIN``.

    Measured as the median time from a machine's row to ``started`` over the latest machines; but
    ``started`` is only the provider's word (a local process spawned, a Fly VM booted), and the agent
    still boots after it, which this app does not see: the minimum stands for that boot.
    """
    rows = (
        Machine.objects.filter(provider=settings.MACHINE_PROVIDER, started_at__isnull=False)
        .exclude(events__to_state=MachineState.SUSPENDED)  # a resume rewrites started_at
        .order_by("-created_at")
        .values_list("created_at", "started_at")[:PROVISION_SAMPLES]
    )
    samples = [(started - created).total_seconds() for created, started in rows if started and started >= created]
    measured = statistics.median(samples) if samples else 0.0
    return max(measured, float(settings.POOL_PROVISION_SECONDS_MIN))


def pool_target_now(*, now: datetime, memory_mb: int) -> PoolTarget:
    """The size the refill should bring the pool to now."""
    return pool_target(pool_demand(now=now), pool_policy(memory_mb=memory_mb))


@dataclass(frozen=True)
class PoolReport:
    """The pool as the dashboard shows it: size against target and why, hit rate, cost per hour."""

    target: PoolTarget
    demand: PoolDemand
    policy: PoolPolicy
    ready: int
    booting: int
    suspended: int
    warm_claims: int  # creates served by a warm machine in the demand window
    creates: int  # all creates in the demand window
    hourly_cost: Decimal  # what the pool's machines cost per hour right now

    @property
    def size(self) -> int:
        return self.ready + self.booting + self.suspended

    @property
    def hit_rate(self) -> float | None:
        return hit_rate(warm=self.warm_claims, creates=self.creates)


def pool_report(*, now: datetime, memory_mb: int) -> PoolReport:
    demand, policy = pool_demand(now=now), pool_policy(memory_mb=memory_mb)
    counts = _pool_counts()
    started = counts["ready"] + counts["booting"]
    return PoolReport(
        target=pool_target(demand, policy),
        demand=demand,
        policy=policy,
        **counts,
        warm_claims=_warm_claims_since(now - timedelta(seconds=demand.window_seconds), now),
        creates=demand.window_creates,
        hourly_cost=policy.machine_usd_per_hour * started
        + pool_machine_hourly_cost(memory_mb=memory_mb, suspended=True) * counts["suspended"],
    )


def _pool_counts() -> dict[str, int]:
    warm = Machine.objects.filter(is_warm=True, provider=settings.MACHINE_PROVIDER)
    return {
        "ready": warm.filter(state=MachineState.STARTED).count(),
        "booting": warm.filter(state__in=[MachineState.CREATED, MachineState.STARTING]).count(),
        "suspended": warm.filter(state=MachineState.SUSPENDED).count(),
    }


def _warm_claims_since(start: datetime, now: datetime) -> int:
    return MachineEvent.objects.filter(
        machine__provider=settings.MACHINE_PROVIDER, at__gte=start, at__lte=now, detail__has_key="claimed_by_session"
    ).count()
