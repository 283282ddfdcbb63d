"""REST latency with 10,000 sessions in the database, and requests per second under concurrent load.

The load runs against a web server started as production starts it, ``python -m velocity.run web`` (with
``REDIS_URL``: ``WEB_CONCURRENCY`` daphnes on one socket, default the cores; without: one), with the
benchmark's settings (``bench.reference_settings``), which add the reference point: the same list query
answered by a bare Django view returning ``values()`` as JSON (``bench.reference_api``). Both are loaded
by the same 16 clients in the same run; our requests per second over the reference's is the ratio.

The rows are bulk-inserted (no signals, no publications): 1,000 users with ten sessions each, one
in ten live, plus the measured user's own 50. Creates run with the task cluster stopped, so each one
costs what the API costs (quota check, insert, enqueue, status publication) and no agent is started;
the sessions are ended in the database afterwards and the cluster is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench import raw_http
from bench.results import Figure, Results, percentile
from bench.stack import REPO_ROOT, Stack, free_port, stop_group, wait_until_answering
from bench.time_to_preview import user_headers

if TYPE_CHECKING:
    from sessions.models import PreviewSession

GROUP = "api"
ROWS = 10_000
OWN_SESSIONS = 50
CONCURRENCY = 16
LIST_RPS_TARGET = 300.0
LIST_P99_TARGET_MS = 100.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REFERENCE_PATH = "bench/reference/sessions/"  # served by bench.reference_api


def seed_sessions(owner: uuid.UUID, total: int = ROWS) -> None:
    from django.utils import timezone

    from sessions.models import PreviewSession

    now = timezone.now()
    rows = [_row(owner, index, now) for index in range(OWN_SESSIONS)]
    users = [uuid.uuid4() for _ in range((total - OWN_SESSIONS) // 10)]
    rows += [_row(users[index // 10], index, now) for index in range(len(users) * 10)]
    PreviewSession.objects.bulk_create(rows, batch_size=1000)


def _row(user: uuid.UUID, index: int, now: datetime) -> PreviewSession:
    from sessions.models import PreviewSession

    created = now - timedelta(minutes=index)
    live = index % 10 == 0
    return PreviewSession(
        user_id=user,
        project_id=f"project-{index}",
        status="active" if live else "ended",
        end_reason="" if live else "user",
        created_at=created,
        updated_at=created,
        ended_at=None if live else created + timedelta(minutes=5),
        expires_at=now + timedelta(hours=2),  # none expire during the run
        last_activity_at=created,
    )


def timed_requests(
    method: str, url: str, count: int, headers: Callable[[], dict[str, str]], body: Callable[[int], Any] | None = None
) -> list[float]:
    """Sequential requests on one keep-alive connection; the seconds each took."""
    seconds = []
    with httpx.Client(timeout=30) as client:
        for index in range(count):
            request = client.build_request(method, url, headers=headers(), json=body(index) if body else None)
            began = time.perf_counter()
            response = client.send(request)
            seconds.append(time.perf_counter() - began)
            if response.status_code >= 400:
                raise RuntimeError(f"{method} {url} answered {response.status_code}: {response.text[:300]}")
    return seconds


async def _load(url: str, headers: dict[str, str], seconds: float) -> tuple[int, list[float]]:
    latencies = await raw_http.load(url, headers, seconds, CONCURRENCY)
    return len(latencies), latencies


def latency_figures(name: str, seconds: list[float], note: str, p99_target: float | None = None) -> list[Figure]:
    return [
        Figure(GROUP, f"{name}_p50", percentile(seconds, 0.5) * 1000, "ms", note=note),
        Figure(GROUP, f"{name}_p99", percentile(seconds, 0.99) * 1000, "ms", p99_target, note=note),
    ]


def _end_bench_creates(prefix: str) -> None:
    from django.utils import timezone

    from sessions.models import PreviewSession

    now = timezone.now()
    PreviewSession.objects.filter(project_id__startswith=prefix, status__in=["creating", "active"]).update(
        status="ended", end_reason="user", ended_at=now, updated_at=now
    )


def run(stack: Stack, results: Results, *, quick: bool) -> None:
    owner = uuid.uuid4()
    seed_sessions(owner)
    own, service = user_headers(owner), user_headers(None, role="service_role")
    sessions_url = f"{stack.base_url}/api/v1/sessions/"
    count = 100 if quick else 1000
    note = f"{count} sequential GETs, a user with {OWN_SESSIONS} of {ROWS:,} sessions"
    results.add(*latency_figures("list_user", timed_requests("GET", sessions_url, count, lambda: own), note, 30))
    note = f"{count} sequential GETs of the first page of all {ROWS:,} (with count)"
    results.add(
        *latency_figures("list_service_role", timed_requests("GET", sessions_url, count, lambda: service), note)
    )
    stack.stop_cluster()
    try:
        creates = 50 if quick else 500
        prefix = f"bench-api-{uuid.uuid4().hex[:6]}"
        seconds = timed_requests(
            "POST", sessions_url, creates, lambda: user_headers(uuid.uuid4()), lambda i: {"project_id": f"{prefix}-{i}"}
        )
        results.add(*latency_figures("create", seconds, f"{creates} sequential creates by new users, cluster stopped"))
        _end_bench_creates(prefix)
    finally:
        stack.start_cluster()
    wait_for_quiet_cluster(stack)
    results.add(*under_load(stack, owner, own, 3.0 if quick else 10.0))


# The cluster counts as done with the creates' tasks once it uses less than this share of a core (its heartbeat and
# schedule alone stay far below it).
QUIET_CLUSTER_SHARE = 0.1


def wait_for_quiet_cluster(stack: Stack, timeout: float = 120.0) -> None:
    """Until the cluster has run the creates' provisioning tasks (each finds its session ended). The broker's queue
    empties long before: the cluster takes tasks ahead into a queue of its own. So until its processes are idle
    too, measured over a second. Run while the load is measured, the tasks took about a third of a core from
    the web (p99 83 ms in the first 8 s against 51-59 ms once they were done)."""
    from django_q.brokers import get_broker

    broker, deadline = get_broker(), time.monotonic() + timeout
    while broker.queue_size() and time.monotonic() < deadline:
        time.sleep(0.2)
    while _cluster_share(stack) > QUIET_CLUSTER_SHARE and time.monotonic() < deadline:
        pass


def _cluster_share(stack: Stack) -> float:
    """The share of a core the cluster's processes used over the next second."""
    before = cpu_seconds(stack.cluster_pids())
    time.sleep(1.0)
    return cpu_seconds(stack.cluster_pids()) - before


@contextlib.contextmanager
def production_web(stack: Stack) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m velocity.run web`` on a port of its own, with the reference view mounted."""
    port = free_port()
    env = {**stack.env, "PORT": str(port), "DJANGO_SETTINGS_MODULE": "bench.reference_settings"}
    # As production runs: DEBUG off (with it, Django records every query), plain HTTP on loopback.
    env |= {"DEBUG": "false", "SECURE_SSL_REDIRECT": "false"}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(stack.root / "web-prometheus")  # emptied at start: never the stack's
    with (stack.logs / "web.log").open("ab") as log:
        process = subprocess.Popen(  # noqa: S603  (our interpreter and module)
            [sys.executable, "-m", "velocity.run", "web"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{base}/health")
        yield base, process
    finally:
        stop_group(process, grace=20)


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU of ``pids`` so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def loaded(url: str, headers: dict[str, str], seconds: float, servers: list[int]) -> tuple[float, float, float]:
    """Requests per second, p99 (ms) and server CPU per request (ms) of ``CONCURRENCY`` clients on ``url``."""
    rps, p99, cpu_ms, _ = loaded_spread(url, headers, seconds, servers)
    return rps, p99, cpu_ms


def loaded_spread(
    url: str, headers: dict[str, str], seconds: float, servers: list[int]
) -> tuple[float, float, float, list[float]]:
    """``loaded``, and each server process's CPU seconds during the load (how evenly the work was spread)."""
    asyncio.run(_load(url, headers, 1.0))  # warm every process's imports, connections and caches
    before = [cpu_seconds([pid]) for pid in servers]
    done, latencies = asyncio.run(_load(url, headers, seconds))
    spent = [cpu_seconds([pid]) - was for pid, was in zip(servers, before, strict=True)]
    return done / seconds, percentile(latencies, 0.99) * 1000, sum(spent) * 1000 / max(done, 1), spent


def under_load(stack: Stack, owner: uuid.UUID, own: dict[str, str], seconds: float) -> list[Figure]:
    with production_web(stack) as (base, process):
        servers = children_of(process.pid)
        *ours, spread = loaded_spread(f"{base}/api/v1/sessions/", own, seconds, servers)
        reference = loaded(f"{base}/{REFERENCE_PATH}?user_id={owner}", {}, seconds, servers)
    figures = load_figures((ours[0], ours[1], ours[2]), reference, processes=len(servers), seconds=seconds)
    spread_note = ", ".join(f"{cpu:.1f} s" for cpu in spread)
    figures[0].note += f"; CPU of each web process during ours: {spread_note}"
    return figures


def load_figures(
    ours: tuple[float, float, float], reference: tuple[float, float, float], *, processes: int, seconds: float
) -> list[Figure]:
    setup = (
        f"{CONCURRENCY} concurrent keep-alive clients (bench/raw_http.py) listing for {seconds:.0f} s, "
        f"velocity.run web: {processes} process(es)"
    )
    cpu = f"server CPU {ours[2]:.1f} ms per request (reference {reference[2]:.1f} ms)"
    bare = f"the same query by a bare Django view returning values() as JSON; {setup}"
    return [
        Figure(GROUP, "list_under_load_rps", ours[0], "requests/s", LIST_RPS_TARGET, ">=", note=f"{setup}; {cpu}"),
        Figure(GROUP, "list_under_load_p99", ours[1], "ms", LIST_P99_TARGET_MS, note=setup),
        Figure(GROUP, "reference_list_rps", reference[0], "requests/s", note=bare),
        Figure(GROUP, "reference_list_p99", reference[1], "ms", note=bare),
        Figure(GROUP, "list_under_load_vs_reference", ours[0] / reference[0], "ratio", note="our requests/s ÷ its"),
    ]
