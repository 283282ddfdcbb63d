"""How many warm machines the pool should hold: pure arithmetic over demand, settings and price.

The target is Little's law with a margin: the machines that must already wait so that the creates
arriving while new ones provision find one ready, i.e. ``creates per minute * minutes to provision``,
times ``1 + headroom``, rounded up; then held between a floor and a ceiling, then capped by a budget
in dollars per hour. The budget wins over the floor: an operator who caps the spend is never billed
past it.

Demand is read over two windows and the higher rate wins: the short one notices a burst within
seconds, the long one keeps the pool up for a while after it (the hysteresis that stops a pool
from shrinking between two bursts). Shrinking also spares machines younger than the long window,
so a machine made for a burst is not destroyed the minute the burst ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class PoolPolicy:
    floor: int
    ceiling: int
    budget_usd_per_hour: Decimal | None  # None: no cap
    machine_usd_per_hour: Decimal  # what one pool machine costs per hour (started or suspended)
    headroom: float = 0.5

    def __post_init__(self) -> None:
        if self.floor < 0 or self.ceiling < self.floor:
            raise ValueError(f"the pool needs 0 <= floor <= ceiling, got floor {self.floor}, ceiling {self.ceiling}")
        if self.budget_usd_per_hour is not None and self.budget_usd_per_hour < 0:
            raise ValueError("a pool budget cannot be negative")
        if self.headroom < 0:
            raise ValueError("the pool's headroom cannot be negative")


@dataclass(frozen=True)
class PoolDemand:
    burst_creates: int  # creates in the short window
    burst_seconds: float
    window_creates: int  # creates in the long window
    window_seconds: float
    provision_seconds: float  # how long a new machine takes to be claimable

    @property
    def per_minute(self) -> float:
        """The higher of the two rates: a burst is seen at once, a calm spell only after the long window."""
        return max(self.burst_creates * 60 / self.burst_seconds, self.window_creates * 60 / self.window_seconds)


@dataclass(frozen=True)
class PoolTarget:
    size: int
    wanted: int  # what demand alone asks for, before the floor, ceiling and budget
    reason: str  # "demand", "floor", "ceiling" or "budget": what set ``size``
    hourly_cost: Decimal  # ``size`` machines for an hour
    budget_cap: int | None  # the most machines the budget pays for (None: no budget)


def pool_target(demand: PoolDemand, policy: PoolPolicy) -> PoolTarget:
    """The size the pool should have now, and which rule set it."""
    wanted = math.ceil(demand.per_minute * demand.provision_seconds / 60 * (1 + policy.headroom) - 1e-9)
    size, reason = _clamp(wanted, policy)
    cap = budget_cap(policy)
    if cap is not None and size > cap:
        size, reason = cap, "budget"
    return PoolTarget(size, wanted, reason, policy.machine_usd_per_hour * size, cap)


def _clamp(wanted: int, policy: PoolPolicy) -> tuple[int, str]:
    if wanted < policy.floor:
        return policy.floor, "floor"
    if wanted > policy.ceiling:
        return policy.ceiling, "ceiling"
    return wanted, "demand"


def budget_cap(policy: PoolPolicy) -> int | None:
    """How many pool machines the hourly budget pays for; None without a budget."""
    if policy.budget_usd_per_hour is None:
        return None
    if policy.machine_usd_per_hour <= 0:
        return policy.ceiling
    return int(policy.budget_usd_per_hour // policy.machine_usd_per_hour)


def surplus_to_destroy(
    ages_seconds: list[float], *, target: int, min_age_seconds: float, hard_limit: int | None = None
) -> list[int]:
    """Indexes of the pool machines to destroy (``ages_seconds`` oldest first): the oldest beyond ``target``.

    Machines younger than ``min_age_seconds`` are spared, so a pool grown for a burst is not torn
    down the moment demand dips and rebuilt the moment it returns; but nothing is spared past
    ``hard_limit`` (the budget's cap), which is never exceeded.
    """
    over_limit = max(len(ages_seconds) - hard_limit, 0) if hard_limit is not None else 0
    forced = list(range(over_limit))
    extra = max(len(ages_seconds) - target, 0) - over_limit
    old_enough = [index for index, age in enumerate(ages_seconds[over_limit:], over_limit) if age >= min_age_seconds]
    return forced + old_enough[: max(extra, 0)]


def hit_rate(*, warm: int, creates: int) -> float | None:
    """Claims served warm ÷ all creates; None when nothing was created."""
    return warm / creates if creates else None
