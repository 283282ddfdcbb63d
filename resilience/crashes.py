"""Crashes: an agent killed again and again, and the whole orchestrator killed mid-provisioning.

Both run with the real task cluster and real local machines. ``agent_killed`` SIGKILLs a live session's
agent four times: the machine's runner restarts it three times (Fly's ``on-failure`` policy), then gives
up; the session must end up ``failed``. ``sigkill_mid_provisioning`` fires creates, SIGKILLs daphne and
the cluster (every process of both groups) while machines are being made, restarts both, runs the
sweeps after the provisioning timeout, and checks that no session stays ``creating`` and no machine runs
without a live session.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.stack import signal_group
from bench.time_to_preview import create_and_join, user_headers
from resilience.context import Context
from resilience.report import Outcome

KILLS = 4
PROVISION_TIMEOUT = 20  # the stack runs with PROVISION_TIMEOUT=20 (see resilience/run.py)


def machine_dir(ctx: Context, machine_id: str) -> Path:
    from machines.models import Machine

    return ctx.stack.var_dir / "machines" / Machine.objects.get(id=machine_id).provider_machine_id


def runner_state(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "state.json").read_text()))


def wait_for(condition: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def kill_agent_repeatedly(out: Outcome, folder: Path) -> dict[str, Any]:
    for kill in range(1, KILLS + 1):
        state = runner_state(folder)
        pid = int(state["agent_pid"])
        os.kill(pid, signal.SIGKILL)  # the agent alone: it shares its runner's process group
        restarted = wait_for(
            lambda p=pid: runner_state(folder).get("agent_pid") != p or runner_state(folder).get("state") == "failed",
            15,
        )
        now = runner_state(folder)
        out.saw(f"kill {kill}: runner state {now.get('state')}, restarts {now.get('restarts')}, restarted={restarted}")
        if now.get("state") == "failed":
            break
        wait_for(lambda: runner_state(folder).get("state") == "started", 10)
        time.sleep(1.0)  # let the new agent boot before the next kill
    return runner_state(folder)


def session_status(ctx: Context, session_id: str, headers: dict[str, str]) -> dict[str, Any]:
    return dict(httpx.get(f"{ctx.api}/sessions/{session_id}/", headers=headers, timeout=10).json())


def agent_killed(ctx: Context, out: Outcome) -> None:
    ctx.stack.start_cluster()
    try:
        headers = user_headers(uuid.uuid4())
        with httpx.Client(timeout=30) as client:
            session = create_and_join(client, ctx.stack.base_url, headers, f"killed-{uuid.uuid4().hex[:6]}").session
        out.step(f"session {session['id']} active; SIGKILL its agent up to {KILLS} times")
        final = kill_agent_repeatedly(out, machine_dir(ctx, session["machine_id"]))
        out.check(
            final.get("state") == "failed" and final.get("restarts") == 3,
            "the runner restarted the agent 3 times, then gave up (state failed)",
            f"the runner ended as {final}",
        )
        time.sleep(3)
        out.step("run the scheduled jobs (manage.py sweep)")
        out.saw(ctx.stack.manage("sweep").strip().replace("\n", "; "))
        after = session_status(ctx, session["id"], headers)
        out.saw(f"session is {after['status']} ({after.get('end_reason')}: {after.get('end_detail')})")
        if after["status"] != "failed":
            out.step("reconcile as the schedule will once the machine's 2-minute grace has passed (now + 125 s)")
            out.saw(reconcile_later())
            after = session_status(ctx, session["id"], headers)
        out.check(
            after["status"] == "failed",
            f"the session is failed ({after.get('end_detail')})",
            f"the session is {after['status']}, not failed, after its machine failed",
        )
        httpx.delete(f"{ctx.api}/sessions/{session['id']}/", headers=headers, timeout=10)
    finally:
        ctx.stack.stop_cluster()


def fire_creates(ctx: Context, count: int) -> list[tuple[str, dict[str, str]]]:
    """``count`` creates at once; (session id, the owner's headers) for each."""

    def create(index: int) -> tuple[str, dict[str, str]]:
        headers = user_headers(uuid.uuid4())
        body = {"project_id": f"crash-{index}"}
        response = httpx.post(f"{ctx.api}/sessions/", json=body, headers=headers, timeout=30)
        response.raise_for_status()
        return str(response.json()["id"]), headers

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(create, range(count)))


def kill_orchestrator(ctx: Context) -> None:
    """SIGKILL every process of the server's and the cluster's groups (the machines keep running, as Fly's would)."""
    for process in (ctx.stack.server, ctx.stack.cluster):
        if process is not None:
            signal_group(process.pid, signal.SIGKILL)
            process.wait(10)
    ctx.stack.server = ctx.stack.cluster = None


def census(ctx: Context) -> tuple[dict[str, int], list[str]]:
    """Session statuses of this scenario, and the local machines running without a live session."""
    from collections import Counter

    from machines.models import Machine
    from machines.providers.local import LocalProvider
    from sessions.models import LIVE_STATUSES, PreviewSession

    sessions = PreviewSession.objects.filter(project_id__startswith="crash-")
    statuses = dict(Counter(sessions.values_list("status", flat=True)))
    leaks = []
    machines = LocalProvider(ctx.stack.var_dir / "machines").list()
    statuses["machines at the provider"] = len(machines)
    for machine in machines:
        if machine.state not in ("started", "starting"):
            continue
        row = Machine.objects.filter(provider_machine_id=machine.id).first()
        live = row is not None and PreviewSession.objects.filter(machine=row, status__in=LIVE_STATUSES).exists()
        if not live:
            leaks.append(f"{machine.id} ({'unknown to the database' if row is None else 'database: ' + row.state})")
    return statuses, leaks


def sigkill_mid_provisioning(ctx: Context, out: Outcome) -> None:
    ctx.stack.start_cluster()
    created = fire_creates(ctx, 6)
    time.sleep(0.8)
    kill_orchestrator(ctx)
    out.step("6 concurrent creates; 0.8 s later SIGKILL to daphne and the whole cluster")
    statuses, leaks = census(ctx)
    out.saw(f"at the kill: sessions {statuses}; machines without a live session: {len(leaks)}")
    ctx.stack.start_server()
    ctx.stack.start_cluster()
    try:
        out.step(f"restarted both; wait past PROVISION_TIMEOUT ({PROVISION_TIMEOUT} s), run manage.py sweep")
        time.sleep(PROVISION_TIMEOUT + 2)
        out.saw(ctx.stack.manage("sweep").strip().replace("\n", "; "))
        statuses, leaks = census(ctx)
        out.saw(f"after: sessions {statuses}")
        out.check("creating" not in statuses, "no session stays creating", f"{statuses.get('creating')} still creating")
        if leaks:
            from resilience.faults import merged_service

            out.saw(f"machines without a live session: {leaks}")
            merged_service("machine_reconcile")
            out.breach(f"{len(leaks)} machines run without a live session after a sweep")
        else:
            out.saw("no machine runs without a live session")
    finally:
        for session_id, headers in created:
            httpx.delete(f"{ctx.api}/sessions/{session_id}/", headers=headers, timeout=30)
        ctx.stack.stop_cluster()


def reconcile_later() -> str:
    """One reconciliation as it will run after its grace period (so the scenario need not wait 2 minutes)."""
    from datetime import timedelta

    from django.utils import timezone

    from resilience.faults import merged_service

    report = merged_service("machine_reconcile")(now=timezone.now() + timedelta(seconds=125))
    return f"reconciliation: {report}"
