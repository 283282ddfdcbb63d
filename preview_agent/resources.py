"""How busy the machine the agent runs on is: CPU and memory as fractions of what the machine has.

A Fly Machine is a Firecracker micro-VM, so the kernel's own ``/proc/stat`` and ``/proc/meminfo`` describe
exactly the guest the preview runs in (its ``cpus`` and ``memory_mb``); under the local provider they describe
the host. CPU is a rate, so it needs two readings: the first ``sample()`` has none to report.
The parsers are pure (text in, numbers out) so they are tested on the kernel's real formats.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# /proc/stat's cpu line: user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user).
IDLE_FIELDS = (3, 4)  # idle and iowait: time the CPU did no work
COUNTED_FIELDS = 8  # up to steal; guest and guest_nice are already counted in user and nice


@dataclass(frozen=True)
class CpuTimes:
    busy: int
    total: int


def parse_cpu_times(stat: str) -> CpuTimes:
    """The aggregate ``cpu`` line of ``/proc/stat``, in clock ticks."""
    for line in stat.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(value) for value in fields[1 : 1 + COUNTED_FIELDS]]
            idle = sum(ticks[i] for i in IDLE_FIELDS if i < len(ticks))
            return CpuTimes(busy=sum(ticks) - idle, total=sum(ticks))
    raise ValueError("no aggregate cpu line in /proc/stat")


def parse_memory_ratio(meminfo: str) -> float:
    """Memory in use (``MemTotal - MemAvailable``) over ``MemTotal``, from ``/proc/meminfo``."""
    values = {}
    for line in meminfo.splitlines():
        name, _, rest = line.partition(":")
        if name in ("MemTotal", "MemAvailable"):
            values[name] = int(rest.split()[0])
    total = values.get("MemTotal", 0)
    if total <= 0 or "MemAvailable" not in values:
        raise ValueError("MemTotal and MemAvailable missing from /proc/meminfo")
    return min(1.0, max(0.0, (total - values["MemAvailable"]) / total))


def cpu_ratio(before: CpuTimes, after: CpuTimes) -> float | None:
    """The share of CPU time spent working between two readings (None when no time passed)."""
    elapsed = after.total - before.total
    if elapsed <= 0:
        return None
    return min(1.0, max(0.0, (after.busy - before.busy) / elapsed))


class ResourceMeter:
    """Each ``sample()`` gives ``cpuRatio`` (since the previous sample) and ``memoryRatio``, as far as known."""

    def __init__(self, read: Callable[[str], str] | None = None) -> None:
        self.read = read or (lambda name: (PROC / name).read_text())
        self.last: CpuTimes | None = None

    def sample(self) -> dict[str, float]:
        found: dict[str, float] = {}
        try:
            now = parse_cpu_times(self.read("stat"))
        except (OSError, ValueError):
            now = None  # not Linux, or a /proc we cannot read: say nothing rather than a wrong number
        if now is not None and self.last is not None and (ratio := cpu_ratio(self.last, now)) is not None:
            found["cpuRatio"] = round(ratio, 4)
        self.last = now
        with contextlib.suppress(OSError, ValueError):
            found["memoryRatio"] = round(parse_memory_ratio(self.read("meminfo")), 4)
        return found
