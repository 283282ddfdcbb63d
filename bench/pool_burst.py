"""The auto-sized warm pool under a burst: 30 creates in 10 s after 2 idle minutes; how many were served warm.

The stack is restarted with the pool auto-sized (``WARM_POOL_MIN`` to ``WARM_POOL_MAX``, no budget) and
refilled to its floor; after the idle spell (the quick variant idles 15 s: the pool is already at its
floor, the idle time only lets any earlier demand leave the windows) the creates are fired at an even
pace, each a new user and project, without waiting for one another. The hit rate is the server's
own record: creates whose machine carries a ``claimed_by_session`` event ÷ all creates. Every
session is then awaited (``active`` or ``failed``) and ended.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.results import Figure, Results
from bench.stack import Stack
from bench.time_to_preview import user_headers

GROUP = "time_to_preview"
CREATES, BURST_SECONDS = 30, 10.0
FLOOR, CEILING = 4, 20
SETTLE_TIMEOUT = 120.0


def run(stack: Stack, results: Results, *, quick: bool) -> None:
    results.add(*burst(stack, idle_seconds=15.0 if quick else 120.0))


def burst(stack: Stack, *, idle_seconds: float) -> list[Figure]:
    _restart_with_pool(stack)
    time.sleep(idle_seconds)
    pool_before = _pool_size()
    with httpx.Client(timeout=30) as client:
        created = _fire(client, stack.base_url)
        settled = _settle(client, stack.base_url, created)
        for session, headers in created:
            client.delete(f"{stack.base_url}/api/v1/sessions/{session['id']}/", headers=headers)
    warm = _served_warm([session["id"] for session, _ in created])
    note = (
        f"{CREATES} creates in {BURST_SECONDS:.0f} s after {idle_seconds:.0f} s idle; pool floor {FLOOR}, "
        f"ceiling {CEILING}, {pool_before} ready before the burst; {settled['active']} active, "
        f"{settled['failed']} failed"
    )
    return [
        Figure(GROUP, "pool_burst_hit_rate", 100 * warm / len(created), "%", 90, ">=", note=note),
        Figure(
            GROUP,
            "pool_burst_active_p50",
            settled["p50"],
            "s",
            note="server waterfall: queued to agent ready, median over the burst",
        ),
    ]


def _restart_with_pool(stack: Stack) -> None:
    stack.env.update(WARM_POOL_SIZE="0", WARM_POOL_MIN=str(FLOOR), WARM_POOL_MAX=str(CEILING))
    stack.env.pop("POOL_BUDGET_USD_PER_HOUR", None)
    stack.stop_cluster()
    stack.stop_server()
    stack.start_server()
    stack.start_cluster()
    stack.manage("sweep", "--only", "refill_warm_pool")
    deadline = time.monotonic() + 120
    while _pool_size() < FLOOR and time.monotonic() < deadline:
        time.sleep(0.2)


def _pool_size() -> int:
    from machines.models import Machine

    return Machine.objects.filter(is_warm=True, state="started").count()


def _fire(client: httpx.Client, base: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """POST the creates at an even pace from a few threads; each answer is kept with its user's headers."""
    gap = BURST_SECONDS / CREATES
    began = time.perf_counter()

    def create(index: int) -> tuple[dict[str, Any], dict[str, str]]:
        time.sleep(max(began + index * gap - time.perf_counter(), 0))
        headers = user_headers()
        response = client.post(f"{base}/api/v1/sessions/", json={"project_id": f"burst-{index}"}, headers=headers)
        response.raise_for_status()
        return response.json(), headers

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(create, range(CREATES)))


def _settle(client: httpx.Client, base: str, created: list[tuple[dict[str, Any], dict[str, str]]]) -> dict[str, Any]:
    """Poll every session until it is no longer ``creating``; the server's queued → agent ready time of each."""
    from django.utils.dateparse import parse_datetime

    waits, counts = [], {"active": 0, "failed": 0}
    deadline = time.monotonic() + SETTLE_TIMEOUT
    for session, headers in created:
        body = session
        while body["status"] == "creating" and time.monotonic() < deadline:
            time.sleep(0.05)
            body = client.get(f"{base}/api/v1/sessions/{session['id']}/", headers=headers).json()
        counts[body["status"]] = counts.get(body["status"], 0) + 1
        queued, ready = parse_datetime(body.get("queued_at") or ""), parse_datetime(body.get("agent_ready_at") or "")
        if queued and ready:
            waits.append((ready - queued).total_seconds())
    return {**counts, "p50": statistics.median(waits) if waits else float("nan")}


def _served_warm(session_ids: list[str]) -> int:
    from machines.models import MachineEvent

    return MachineEvent.objects.filter(detail__claimed_by_session__in=session_ids).count()
