"""The agent watch against a real agent under the local provider: frozen with SIGSTOP, it is seen, restarted
and healthy again; frozen for good, the session fails ``agent_unresponsive`` and its machine is destroyed."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from django.db import OperationalError
from django.test import override_settings
from rest_framework.test import APIClient

from machines import tasks as machine_tasks
from machines.models import Machine, MachineEvent
from sessions import services, tasks
from sessions.models import AgentHeartbeat, PreviewSession
from velocity.testing import wait_until

T = TypeVar("T")

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Short clocks, so a hang is seen in seconds; the judgement is the same as with the defaults.
FAST = {
    "AGENT_HEARTBEAT_SECONDS": 0.5,
    "AGENT_STALE_SECONDS": 3,
    "AGENT_PROBE_TIMEOUT_SECONDS": 0.5,
    "AGENT_RESTART_GRACE_SECONDS": 20,
    "AGENT_RESTART_LIMIT": 1,
}


@pytest.fixture
def local_machines(local_machines: Path) -> Iterator[Path]:
    """The shared fixture (sessions/tests/conftest.py) with the agent watch's clocks shortened."""
    with override_settings(**FAST):
        yield local_machines


def retried(read: Callable[[], T]) -> Callable[[], T | None]:
    """The test database is SQLite in memory, shared with the live server's threads: a read that meets the
    agent's write answers "table is locked" at once (no busy wait in shared-cache mode); the next poll retries."""

    def attempt() -> T | None:
        try:
            return read()
        except OperationalError:
            return None

    return attempt


def active_session(as_user: Callable[..., APIClient]) -> PreviewSession:
    session_id = as_user(uuid.uuid4()).post("/api/v1/sessions/", {"project_id": "demo"}, format="json").json()["id"]
    tasks.provision_session(session_id)
    return wait_until(
        retried(
            lambda: PreviewSession.objects.filter(id=session_id, status="active", agent_heartbeat__isnull=False).first()
        ),
        timeout=60,
        what="an active session whose agent sends heartbeats",
    )


def agent_pid(root: Path, session: PreviewSession) -> int | None:
    machine = Machine.objects.get(sessions=session)
    state = json.loads((root / "machines" / machine.provider_machine_id / "state.json").read_text())
    return state.get("agent_pid") if state.get("state") == "started" else None


def watch_until(condition: Callable[[PreviewSession], bool], session: PreviewSession, what: str) -> PreviewSession:
    """Run the watch's rounds (as the worker's loop does) until the session meets ``condition``."""

    def reached() -> PreviewSession | None:
        services.agents_watch()
        current = PreviewSession.objects.get(id=session.id)
        return current if condition(current) else None

    return wait_until(retried(reached), timeout=90, interval=0.2, what=what)


def test_a_frozen_agent_is_marked_degraded_restarted_and_healthy_again(
    local_machines: Path, as_user: Callable[..., APIClient]
) -> None:
    session = active_session(as_user)
    watch_until(lambda s: s.health == "ok", session, "healthy")
    frozen = agent_pid(local_machines, session)
    assert frozen is not None
    os.kill(frozen, signal.SIGSTOP)

    degraded = watch_until(lambda s: s.health == "degraded", session, "degraded")
    assert "/health did not answer" in degraded.health_detail or "no heartbeat" in degraded.health_detail
    restarted = watch_until(lambda s: s.agent_restarts == 1, session, "restarted")
    assert restarted.health_detail.startswith("restarting the machine: no heartbeat for")
    assert MachineEvent.objects.filter(machine__sessions=session, detail__restarted=True).count() == 1

    healthy = watch_until(lambda s: s.health == "ok", session, "healthy after the restart")
    assert (healthy.status, healthy.agent_restarts, healthy.agent_restart_streak) == ("active", 1, 0)
    assert agent_pid(local_machines, session) not in (None, frozen)
    beat = AgentHeartbeat.objects.get(session=session)
    assert healthy.agent_restarted_at is not None
    assert beat.seen_at > healthy.agent_restarted_at  # the restarted agent found its session again


def test_an_agent_that_stays_frozen_after_the_restarts_fails_the_session_and_loses_its_machine(
    local_machines: Path, as_user: Callable[..., APIClient]
) -> None:
    session = active_session(as_user)
    os.kill(agent_pid(local_machines, session) or 0, signal.SIGSTOP)
    restarted = watch_until(lambda s: s.agent_restarts == 1, session, "restarted")

    def freeze_the_new_agent() -> bool:
        pid = agent_pid(local_machines, restarted)
        if pid is None:
            return False
        os.kill(pid, signal.SIGSTOP)
        return True

    wait_until(freeze_the_new_agent, timeout=30, interval=0.05, what="the restarted agent")
    with override_settings(AGENT_RESTART_GRACE_SECONDS=2):
        failed = watch_until(lambda s: s.status != "active", session, "failed")
    assert (failed.status, failed.end_reason) == ("failed", "agent_unresponsive")
    assert failed.end_detail.endswith("still after 1 restart(s)")
    machine = Machine.objects.get(sessions=session)
    assert machine.state == "destroyed"
    assert not (local_machines / "machines" / machine.provider_machine_id).exists()


def test_a_restarted_warm_pool_agent_is_handed_the_same_session_again(
    local_machines: Path, as_user: Callable[..., APIClient]
) -> None:
    with override_settings(WARM_POOL_SIZE=1):
        assert machine_tasks.refill_warm_pool() == "warm pool of 1: created 1, destroyed 0"
        created = as_user().post("/api/v1/sessions/", {"project_id": "demo"}, format="json").json()
        assert created["machine_id"] is not None  # the create claimed the warm machine itself
        session_id = created["id"]
    session = wait_until(
        retried(lambda: PreviewSession.objects.filter(id=session_id, agent_heartbeat__isnull=False).first()),
        timeout=60,
        what="the claimed machine's agent reporting",
    )
    frozen = agent_pid(local_machines, session)
    os.kill(frozen or 0, signal.SIGSTOP)
    watch_until(lambda s: s.agent_restarts == 1, session, "restarted")
    healthy = watch_until(lambda s: s.health == "ok", session, "healthy after the restart")
    assert (healthy.status, healthy.machine_id) == ("active", session.machine_id)
    assert agent_pid(local_machines, session) not in (None, frozen)
    health = httpx.get(f"{Machine.objects.get(sessions=session).address}/health", timeout=5).json()
    assert (health["projectId"], health["sessionId"]) == ("demo", session_id)  # without PROJECT_ID, it asked again
