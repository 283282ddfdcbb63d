"""Resident memory: the orchestrator's processes (daphne, the task cluster) and one idle preview agent.

Read from ``/proc/<pid>/status`` (``VmRSS``) after the earlier groups ran, so the orchestrator figure is
a warmed-up server, not a fresh import. The agent is a real local machine of a live session with an
empty project (no dev server), left alone for a settle period before it is read.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

import httpx

from bench.results import Figure, Results, not_measured
from bench.stack import Stack
from bench.time_to_preview import create_and_wait, end_session, user_headers

GROUP = "rss"
AGENT_MEMORY_MB = 512  # the default machine size (PREVIEW_MACHINE_MEMORY_MB)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_pids(leader: int) -> list[int]:
    """Every live process in ``leader``'s process group."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == leader:
                    pids.append(int(entry.name))
    return pids


def group_rss_mib(leader: int) -> float:
    total = 0.0
    for pid in group_pids(leader):
        with contextlib.suppress(OSError):
            total += rss_mib(pid)
    return total


def orchestrator_figures(stack: Stack) -> list[Figure]:
    assert stack.server is not None and stack.cluster is not None  # noqa: S101  (started by the runner)
    cluster = group_pids(stack.cluster.pid)
    return [
        Figure(
            GROUP, "orchestrator_web", rss_mib(stack.server.pid), "MiB", note="daphne serving the ASGI app, warmed up"
        ),
        Figure(
            GROUP,
            "orchestrator_cluster",
            group_rss_mib(stack.cluster.pid),
            "MiB",
            note=f"django-q2 cluster, {len(cluster)} processes (sum; shared pages counted in each)",
        ),
    ]


def agent_figures(stack: Stack, settle: float) -> list[Figure]:
    headers = user_headers(uuid.uuid4())
    with httpx.Client(timeout=30) as client:
        session = create_and_wait(client, stack.base_url, headers, f"bench-rss-{uuid.uuid4().hex[:6]}").session
        try:
            time.sleep(settle)
            agents = stack.agent_pids()
            if len(agents) != 1:
                return [not_measured(GROUP, "agent_idle", "MiB", f"expected one agent process, found {len(agents)}")]
            pid = agents[0]
            before = cpu_seconds(pid)
            time.sleep(settle)
            cpu = (cpu_seconds(pid) - before) / settle * 100
            memory = rss_mib(pid)
        finally:
            end_session(client, stack.base_url, headers, session["id"])
    note = f"empty project (static, no dev server), joined to its channel, {2 * settle:.0f} s after ready"
    return [
        Figure(GROUP, "agent_idle", memory, "MiB", note=note),
        Figure(GROUP, "agent_idle_share_of_machine", memory / AGENT_MEMORY_MB * 100, "%", note="of a 512 MB machine"),
        Figure(GROUP, "agent_idle_cpu", cpu, "% of a core", note=f"over {settle:.0f} s idle"),
    ]


def run(stack: Stack, results: Results, *, quick: bool) -> None:
    results.add(*orchestrator_figures(stack))
    results.add(*agent_figures(stack, 2.0 if quick else 5.0))
