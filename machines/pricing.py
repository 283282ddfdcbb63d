"""Fly Machines prices as data, and the cost of a machine's life from its state intervals.

Sources (copied into shared/ref/fly-machines-api.md, section 9):
- rates: Fly's own price calculator, superfly/flyio-price-calc-ex ``lib/flyio_price_calc/price.ex``
  (shared $0.695 per vCPU-month, performance $21 per vCPU-month, RAM $5 per GB-month, 730-hour
  month) and its ``regions.ex`` markups (Oct 2024);
- billing rules: https://fly.io/docs/about/billing/ (started machines pay compute per second;
  stopped and suspended ones pay only root-filesystem storage, $0.15 per GB per 30 days);
- checks: https://fly.io/docs/about/pricing/ and the cost-management page (figures reproduced in
  ``tests/test_pricing.py``).

The region multiplier applies to CPU and RAM alike: the calculator code only marks up CPU, but
Fly's published sjc figures ($2.32 for shared-cpu-1x 256 MB) need both marked up.

Money is ``Decimal`` throughout and costs are exact; round only for display.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from machines.providers.base import MachineState

SECONDS_PER_MONTH = Decimal(2_628_000)  # 730 hours, the month Fly's compute prices use
SECONDS_PER_STORAGE_MONTH = Decimal(2_592_000)  # storage is priced "per 30 days"
CENT = Decimal("0.01")

VCPU_MONTH = {"shared": Decimal("0.695"), "performance": Decimal("21")}
RAM_GB_MONTH = Decimal("5")
ROOTFS_GB_MONTH = Decimal("0.15")
BASE_REGION = "iad"
# Fly bills the root filesystem a machine actually has; when the caller does not know it, the
# estimates assume 1 GB (a small Node image with its dependencies).
DEFAULT_ROOTFS_GB = Decimal(1)

_MULTIPLIER_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("1.00", ("iad", "ewr")),
    ("1.038", ("ams", "arn")),
    ("1.077", ("bom",)),
    ("1.096", ("mad",)),
    ("1.115", ("yul", "yyz")),
    ("1.135", ("lhr", "cdg")),
    ("1.154", ("fra",)),
    ("1.192", ("sjc",)),
    ("1.200", ("lax",)),
    ("1.25", ("atl", "bos", "ord", "dfw", "den", "mia", "phx", "sea")),
    ("1.269", ("sin", "syd")),
    ("1.303", ("jnb",)),
    ("1.308", ("nrt",)),
    ("1.327", ("otp", "waw")),
    ("1.351", ("gdl", "qro")),
    ("1.404", ("hkg",)),
    ("1.615", ("bog", "gig", "gru")),
    ("1.697", ("scl",)),
    ("1.858", ("eze",)),
)
REGION_MULTIPLIERS: Mapping[str, Decimal] = {
    region: Decimal(value) for value, regions in _MULTIPLIER_GROUPS for region in regions
}
# A region missing from the table is priced at the dearest known one: cost reports may then
# over-state, never under-state, what Fly will bill.
UNKNOWN_REGION_MULTIPLIER = max(REGION_MULTIPLIERS.values())

COMPUTE_STATES = frozenset({MachineState.STARTED})
STORAGE_STATES = frozenset(
    {
        MachineState.CREATED,
        MachineState.STARTING,
        MachineState.STOPPING,
        MachineState.STOPPED,
        MachineState.SUSPENDED,
        MachineState.FAILED,
    }
)

Interval = tuple[MachineState | str, datetime, datetime]


def region_multiplier(region: str | None) -> Decimal:
    """The price markup of a region; None means the base region. Takes ``"iad,ord"`` lists."""
    if not region:
        return REGION_MULTIPLIERS[BASE_REGION]
    first = region.split(",")[0].strip().lower()
    return REGION_MULTIPLIERS.get(first, UNKNOWN_REGION_MULTIPLIER)


def monthly_price(cpu_kind: str, cpus: int, memory_mb: int, region: str | None = None) -> Decimal:
    """The exact, unrounded price of one machine started for a whole 730-hour month."""
    ram = RAM_GB_MONTH * Decimal(memory_mb) / 1024
    return (_vcpu_rate(cpu_kind) * cpus + ram) * region_multiplier(region)


def published_monthly_price(cpu_kind: str, cpus: int, memory_mb: int, region: str | None = None) -> Decimal:
    """The monthly figure as Fly's pricing pages print it, in cents.

    Shared presets land exactly on half cents (256 MB: $1.945). Fly's pages compute in binary
    floating point and print 1.94, 3.19, 5.70 and 10.70 for 1.945, 3.195, 5.695 and 10.695:
    the float sum falls just below or just above the half cent. No single decimal rounding
    rule gives all four (half-up: 1.95; half-even: 3.20; half-down: 5.69), so this reproduces
    the page's own arithmetic. Use it to compare with Fly's pages, never to bill.
    """
    vcpu = float(_vcpu_rate(cpu_kind))
    as_float = (vcpu * cpus + float(RAM_GB_MONTH) * memory_mb / 1024) * float(region_multiplier(region))
    return Decimal(repr(round(as_float, 2))).quantize(CENT, rounding=ROUND_HALF_EVEN)


def running_cost(cpu_kind: str, cpus: int, memory_mb: int, region: str | None, seconds: Decimal | float) -> Decimal:
    """Compute cost of a started machine over ``seconds`` (billed per second)."""
    return monthly_price(cpu_kind, cpus, memory_mb, region) * _seconds(seconds) / SECONDS_PER_MONTH


def stopped_cost(rootfs_gb: Decimal | float, seconds: Decimal | float) -> Decimal:
    """Root-filesystem storage cost of a stopped or suspended machine over ``seconds``."""
    gb = Decimal(str(rootfs_gb))
    return ROOTFS_GB_MONTH * gb * _seconds(seconds) / SECONDS_PER_STORAGE_MONTH


def machine_cost(
    intervals: Iterable[Interval],
    *,
    cpu_kind: str,
    cpus: int,
    memory_mb: int,
    region: str | None,
    rootfs_gb: Decimal | float,
) -> Decimal:
    """Sum the cost of ``(state, start, end)`` intervals of one machine.

    Fly bills compute only while ``started``; every other state in which the machine still
    exists pays its root filesystem; ``destroying`` and ``destroyed`` cost nothing.
    """
    total = Decimal(0)
    for raw_state, start, end in intervals:
        state = MachineState(raw_state)
        seconds = _duration_seconds(end - start)
        if state in COMPUTE_STATES:
            total += running_cost(cpu_kind, cpus, memory_mb, region, seconds)
        elif state in STORAGE_STATES:
            total += stopped_cost(rootfs_gb, seconds)
    return total


def _vcpu_rate(cpu_kind: str) -> Decimal:
    try:
        return VCPU_MONTH[cpu_kind]
    except KeyError:
        raise ValueError(f"unknown cpu_kind {cpu_kind!r}") from None


def _seconds(value: Decimal | float) -> Decimal:
    seconds = value if isinstance(value, Decimal) else Decimal(str(value))
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _duration_seconds(delta: timedelta) -> Decimal:
    whole = Decimal(delta.days * 86_400 + delta.seconds)
    return _seconds(whole + Decimal(delta.microseconds) / 1_000_000)
