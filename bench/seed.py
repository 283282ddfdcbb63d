"""The seed's §11 success metrics, read off the measured figures (never measured twice, never assumed)."""

from __future__ import annotations

from bench.results import Figure, Results, not_measured

GROUP = "seed_section_11"


def _value(results: Results, group: str, name: str) -> float | None:
    for figure in results.figures:
        if figure.group == group and figure.name == name:
            return figure.value
    return None


def figures(results: Results) -> list[Figure]:
    start = _value(results, "time_to_preview", "cold_p95")
    sync = _value(results, "edit_to_ack", "p99")
    memory = _value(results, "rss", "agent_idle_share_of_machine")
    cpu = _value(results, "edit_to_ack", "agent_cpu_during_edits")
    found = [
        ("container_startup_time", start, "s", 30.0, "time_to_preview.cold_p95 (local provider)"),
        ("file_sync_latency", None if sync is None else sync / 1000, "s", 2.0, "edit_to_ack.p99"),
        ("container_memory_utilization", memory, "%", 80.0, "rss.agent_idle_share_of_machine (idle)"),
        ("container_cpu_utilization", cpu, "% of a core", 80.0, "edit_to_ack.agent_cpu_during_edits (100 edits/s)"),
    ]
    out = [
        Figure(GROUP, name, value, unit, target, "<", note=f"from {source}")
        if value is not None
        else not_measured(GROUP, name, unit, f"{source} was not measured", target=target, comparison="<")
        for name, value, unit, target, source in found
    ]
    out.append(
        not_measured(
            GROUP,
            "system_availability",
            "%",
            "needs production uptime monitoring, not a benchmark",
            target=99.5,
            comparison=">",
        )
    )
    return out
