"""The agent's CPU and memory readings: the kernel's real formats parsed, and this machine's real /proc read."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from preview_agent.resources import CpuTimes, ResourceMeter, cpu_ratio, parse_cpu_times, parse_memory_ratio

# Verbatim from a Linux 6.1 guest with 2 vCPUs (user nice system idle iowait irq softirq steal guest guest_nice).
STAT = """cpu  21532 1552 7522 55916 691 0 238 132 0 0
cpu0 7968 922 3201 31239 251 0 42 66 0 0
cpu1 13564 630 4321 24677 440 0 196 66 0 0
intr 2851013 0 9 0 0 0 0 0 0 0
ctxt 5301823
"""
MEMINFO = """MemTotal:         512000 kB
MemFree:           40000 kB
MemAvailable:     128000 kB
Buffers:            8000 kB
"""


def test_busy_time_is_everything_but_idle_and_iowait() -> None:
    times = parse_cpu_times(STAT)
    assert times.total == 21532 + 1552 + 7522 + 55916 + 691 + 0 + 238 + 132
    assert times.busy == times.total - 55916 - 691


def test_cpu_is_the_busy_share_between_two_readings() -> None:
    assert cpu_ratio(CpuTimes(busy=100, total=400), CpuTimes(busy=190, total=500)) == 0.9
    assert cpu_ratio(CpuTimes(busy=100, total=400), CpuTimes(busy=100, total=400)) is None


def test_memory_in_use_is_total_less_available() -> None:
    assert parse_memory_ratio(MEMINFO) == 0.75
    with pytest.raises(ValueError, match="MemAvailable"):
        parse_memory_ratio("MemTotal: 512000 kB\n")


def test_the_first_sample_has_memory_only_and_the_second_adds_cpu() -> None:
    readings = iter([STAT, MEMINFO, STAT.replace("55916", "56016").replace("21532", "21632"), MEMINFO])
    meter = ResourceMeter(read=lambda name: next(readings))
    assert meter.sample() == {"memoryRatio": 0.75}
    assert meter.sample() == {"cpuRatio": 0.5, "memoryRatio": 0.75}


def test_an_unreadable_proc_reports_nothing_rather_than_a_guess() -> None:
    def missing(name: str) -> str:
        raise FileNotFoundError(name)

    assert ResourceMeter(read=missing).sample() == {}


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="no /proc: not Linux")
def test_this_machines_proc_gives_fractions() -> None:
    meter = ResourceMeter()
    first = meter.sample()
    time.sleep(0.1)  # the kernel counts in 10 ms ticks: let some pass between the readings
    second = meter.sample()
    assert set(first) == {"memoryRatio"} and 0 < first["memoryRatio"] <= 1
    assert set(second) == {"cpuRatio", "memoryRatio"} and 0 <= second["cpuRatio"] <= 1
