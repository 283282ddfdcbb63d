"""The whole loop through the real path: API → provisioning task → a real local agent → ready → active → end."""

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import httpx
import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from machines.models import Machine, MachineEvent
from machines.providers import get_provider
from sessions import tasks
from sessions.models import PreviewSession
from velocity.testing import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def wait_for_status(session_id: str, status: str, timeout: float = 30) -> PreviewSession:
    def reached() -> PreviewSession | None:
        session = PreviewSession.objects.get(id=session_id)
        return session if session.status == status else None

    return wait_until(reached, timeout=timeout, interval=0.1, what=f"session {session_id} {status}")


def test_a_created_session_becomes_active_with_a_preview_and_ending_it_stops_the_machine(
    local_machines: Path, as_user: Callable[..., APIClient]
) -> None:
    client = as_user(uuid.uuid4())
    session_id = client.post("/api/v1/sessions/", {"project_id": "demo"}, format="json").json()["id"]
    assert tasks.provision_session(session_id).endswith("started")
    session = wait_for_status(session_id, "active")
    assert session.preview_url.startswith("http://127.0.0.1:")
    assert session.machine_created_at and session.machine_started_at and session.agent_ready_at
    assert "total" in session.boot_timings
    assert httpx.get(session.preview_url, timeout=5).status_code == 404  # the agent serves an empty project
    assert session.machine_id is not None
    machine = Machine.objects.get(id=session.machine_id)
    runner_pid = int((local_machines / "machines" / machine.provider_machine_id / "runner.pid").read_text())

    ended = client.delete(f"/api/v1/sessions/{session_id}/").json()
    assert (ended["status"], ended["end_reason"]) == ("ended", "user")
    machine.refresh_from_db()
    assert machine.state == "destroyed"
    with pytest.raises(ProcessLookupError):
        os.killpg(runner_pid, 0)
    states = list(MachineEvent.objects.filter(machine=machine).values_list("to_state", flat=True))
    assert states == ["created", "starting", "started", "destroying", "destroyed"]


def test_a_failed_launch_fails_the_session_and_leaves_no_machine(
    local_machines: Path, as_user: Callable[..., APIClient]
) -> None:
    session_id = as_user().post("/api/v1/sessions/", {"project_id": "demo"}, format="json").json()["id"]
    with override_settings(
        MACHINE_PROVIDER="fly", FLY_API_TOKEN="t", FLY_APP_NAME="a", FLY_API_BASE_URL="http://127.0.0.1:1"
    ):
        get_provider.cache_clear()
        summary = tasks.provision_session(session_id)
    get_provider.cache_clear()
    session = PreviewSession.objects.get(id=session_id)
    assert "failed" in summary
    assert (session.status, session.end_reason) == ("failed", "failed")
    assert "machine launch failed" in session.end_detail
    assert session.machine_id is not None
    assert Machine.objects.get(id=session.machine_id).state == "failed"


def test_agent_events_need_the_machines_own_token(api: APIClient) -> None:
    response = api.post("/api/v1/agent/events/", {"type": "ready"}, format="json", HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth.machine_token"


def test_an_agents_idle_exit_ends_the_session_and_its_machine_is_released_by_the_cluster(
    local_machines: Path, as_user: Callable[..., APIClient]
) -> None:
    from django_q.conf import Conf

    from sessions import services

    session_id = as_user().post("/api/v1/sessions/", {"project_id": "demo"}, format="json").json()["id"]
    tasks.provision_session(session_id)
    session = wait_for_status(session_id, "active")
    assert session.machine_id is not None and session.agent_ready_at is not None
    machine = Machine.objects.get(id=session.machine_id)
    with mock.patch.object(Conf, "SYNC", True):  # run the queued release in process, as the cluster would
        outcome = services.session_handle_agent_event(
            machine=machine, event={"type": "exit", "reason": "idle"}, now=session.agent_ready_at
        )
    session.refresh_from_db()
    machine.refresh_from_db()
    assert outcome == "ended"
    assert (session.status, session.end_reason) == ("ended", "idle")
    assert machine.state == "destroyed"
