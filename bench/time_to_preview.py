"""Time to preview: ``POST /api/v1/sessions/`` → the session reads ``active`` and its preview answers.

Measured from the client's side (the editor's view): the clock starts before the POST and stops when a
GET of the session (polled every ``POLL_SECONDS``) shows ``active`` and a GET of its ``preview_url``
answers. The server's own waterfall (queue wait, machine start, agent boot) is reported beside it, so
a slow figure says where the time went.
"""

from __future__ import annotations

import importlib
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from bench.results import Figure, Results, not_measured, percentile
from bench.stack import Stack

GROUP = "time_to_preview"
# Issue 16's targets on this machine: a warm pool exists to beat the hosted sandboxes (~100 ms).
WARM_P50_TARGET, WARM_P95_TARGET, COLD_P50_TARGET = 0.1, 0.2, 0.4
POLL_SECONDS = 0.01
ACTIVE_TIMEOUT = 60.0
JOIN_TIMEOUT = 15.0


@dataclass
class Preview:
    seconds: float
    session: dict[str, Any]
    end_seconds: float = float("nan")  # the DELETE that ended it (destroys the machine before answering)
    active_in_response: bool = False  # the create's own answer said `active` (a warm claim confirmed in time)


def user_headers(user_id: uuid.UUID | None = None, role: str = "authenticated") -> dict[str, str]:
    from velocity.auth import issue_token

    return {"Authorization": f"Bearer {issue_token(sub=user_id or uuid.uuid4(), role=role, ttl=3600)}"}


def create_and_wait(client: httpx.Client, base: str, headers: dict[str, str], project: str) -> Preview:
    started = time.perf_counter()
    response = client.post(f"{base}/api/v1/sessions/", json={"project_id": project}, headers=headers)
    response.raise_for_status()
    session = response.json()
    active_in_response = session["status"] == "active"
    while session["status"] == "creating" and time.perf_counter() - started < ACTIVE_TIMEOUT:
        time.sleep(POLL_SECONDS)
        session = client.get(f"{base}/api/v1/sessions/{session['id']}/", headers=headers).json()
    if session["status"] != "active":
        raise RuntimeError(f"session {session['id']} is {session['status']}: {session.get('end_detail')}")
    preview = client.get(session["preview_url"])
    if preview.status_code >= 500:  # an empty project answers 404: the agent serves, there is no page yet
        raise RuntimeError(f"the preview of {session['id']} answered {preview.status_code}")
    return Preview(time.perf_counter() - started, session, active_in_response=active_in_response)


def create_and_join(client: httpx.Client, base: str, headers: dict[str, str], project: str) -> Preview:
    """``create_and_wait``, then until the agent has joined ``project:{id}`` (its ``/health`` says so): an agent
    reports ``ready`` before its join, and an editor that sends at once relies on the join's ``agent:manifest``
    to resend what was missed, which these scripted editors do not do."""
    preview = create_and_wait(client, base, headers, project)
    deadline = time.perf_counter() + JOIN_TIMEOUT
    while not _joined(client, preview.session["preview_url"]):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the agent of {preview.session['id']} did not join within {JOIN_TIMEOUT} s")
        time.sleep(POLL_SECONDS)
    return preview


def _joined(client: httpx.Client, preview_url: str) -> bool:
    try:
        return bool(client.get(f"{preview_url}health").json().get("supabaseConnected"))
    except (httpx.HTTPError, ValueError):
        return False


def end_session(client: httpx.Client, base: str, headers: dict[str, str], session_id: str) -> None:
    client.delete(f"{base}/api/v1/sessions/{session_id}/", headers=headers).raise_for_status()


def measure(stack: Stack, count: int, prefix: str) -> list[Preview]:
    previews = []
    with httpx.Client(timeout=30) as client:
        for index in range(count):
            headers = user_headers()
            preview = create_and_wait(client, stack.base_url, headers, f"{prefix}-{index}")
            began = time.perf_counter()
            end_session(client, stack.base_url, headers, preview.session["id"])
            preview.end_seconds = time.perf_counter() - began
            previews.append(preview)
    return previews


def _step_seconds(previews: list[Preview], start: str, end: str) -> float:
    from django.utils.dateparse import parse_datetime

    spans = []
    for preview in previews:
        begin, finish = parse_datetime(preview.session[start] or ""), parse_datetime(preview.session[end] or "")
        if begin and finish:
            spans.append((finish - begin).total_seconds())
    return statistics.median(spans) if spans else float("nan")


def waterfall(previews: list[Preview], label: str) -> list[Figure]:
    steps = (
        ("queue_wait", "queued_at", "machine_created_at", "task queue pick-up and machine row (0 for a claim)"),
        ("machine_start", "machine_created_at", "machine_started_at", "provider create until the process runs"),
        ("agent_boot", "machine_started_at", "agent_ready_at", "agent boot until its ready report"),
    )
    return [
        Figure(GROUP, f"{label}_{name}_median", _step_seconds(previews, a, b), "s", note=f"server waterfall: {what}")
        for name, a, b, what in steps
    ]


def cold(stack: Stack, count: int) -> list[Figure]:
    previews = measure(stack, count, "bench-cold")
    seconds = [p.seconds for p in previews]
    note = f"{count} sequential creates, each a new user and project; poll every {POLL_SECONDS * 1000:.0f} ms"
    return [
        Figure(GROUP, "cold_p50", percentile(seconds, 0.5), "s", COLD_P50_TARGET, note=note),
        Figure(GROUP, "cold_p95", percentile(seconds, 0.95), "s", note=note),
        *waterfall(previews, "cold"),
        Figure(
            "api",
            "end_live_session_p50",
            percentile([p.end_seconds for p in previews], 0.5),
            "s",
            note="DELETE of an active session: its machine is destroyed before the answer",
        ),
    ]


def warm_pool_available() -> bool:
    """The warm pool comes with branch machines2 (``machines.services.machine_claim_warm``)."""
    return hasattr(importlib.import_module("machines.services"), "machine_claim_warm")


def warm(stack: Stack, count: int, pool_size: int = 2) -> list[Figure]:
    if not warm_pool_available():
        reason = "warm pool not merged (machines.services.machine_claim_warm is missing)"
        return [not_measured(GROUP, "warm_p50", "s", reason, target=0.1), not_measured(GROUP, "warm_p95", "s", reason)]
    previews = warm_previews(stack, count, "bench-warm", pool_size)
    seconds = [p.seconds for p in previews]
    note = f"{count} creates, each with a started warm machine waiting (pool size {pool_size})"
    answered = sum(p.active_in_response for p in previews)
    answered_note = "creates whose own response already said `active` (the agent confirmed within WARM_CONFIRM_MS)"
    return [
        Figure(GROUP, "warm_p50", percentile(seconds, 0.5), "s", WARM_P50_TARGET, note=note),
        Figure(GROUP, "warm_p95", percentile(seconds, 0.95), "s", WARM_P95_TARGET, note=note),
        Figure(GROUP, "warm_active_in_response", answered / len(previews), "ratio", note=answered_note),
        *waterfall(previews, "warm"),
    ]


def warm_previews(stack: Stack, count: int, prefix: str, pool_size: int = 2) -> list[Preview]:
    """Restart the server and the cluster with a warm pool of ``pool_size``; then ``count`` creates, each with a
    started warm machine waiting."""
    stack.env["WARM_POOL_SIZE"] = str(pool_size)
    stack.stop_cluster()
    stack.stop_server()
    stack.start_server()
    stack.start_cluster()
    previews = []
    for index in range(count):
        wait_for_pool(stack)
        previews += measure(stack, 1, f"{prefix}-{index}")
    return previews


def wait_for_pool(stack: Stack, timeout: float = 60.0) -> None:
    """Refill the pool now (as the schedule would) and wait for a started warm machine."""
    from machines.models import Machine

    stack.manage("sweep", "--only", "refill_warm_pool")
    deadline = time.monotonic() + timeout
    while not Machine.objects.filter(is_warm=True, state="started").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the warm pool did not fill")
        time.sleep(0.1)
    time.sleep(1.0)  # the warm agent is started; give it a moment to begin its assignment poll


def run_cold(stack: Stack, results: Results, *, quick: bool) -> None:
    results.add(*cold(stack, 5 if quick else 20))


def run_warm(stack: Stack, results: Results, *, quick: bool) -> None:
    results.add(*warm(stack, 3 if quick else 10))
