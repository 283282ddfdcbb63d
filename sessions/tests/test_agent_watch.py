"""Agent liveness services: heartbeats through the agent API, and the watch's verdicts applied to sessions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from machines.models import Machine, MachineEvent, MachineState
from machines.services import machine_prepare, machine_transition
from sessions import services, tasks
from sessions.liveness import Action, Verdict
from sessions.models import AgentHeartbeat, PreviewSession, SessionHealth, SessionStatus
from sessions.services import liveness

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BEAT = {"type": "heartbeat", "devServer": True, "devServerState": "running", "supabaseConnected": True}


def live_machine() -> tuple[Machine, str]:
    machine, spec = machine_prepare(session=None, memory_mb=512)
    Machine.objects.filter(id=machine.id).update(provider_machine_id=f"velocity-{machine.id.hex}")
    for state in (MachineState.STARTING, MachineState.STARTED):
        machine_transition(machine=machine, to_state=state, source="provider")
    machine.refresh_from_db()
    return machine, spec.env["MACHINE_TOKEN"]


def active_session(machine: Machine, project_id: str = "proj-1") -> PreviewSession:
    started = NOW - timedelta(minutes=5)
    return PreviewSession.objects.create(
        user_id=uuid.uuid4(),
        project_id=project_id,
        machine=machine,
        status=SessionStatus.ACTIVE,
        started_at=started,
        agent_ready_at=started,
    )


def send(api: APIClient, token: str, body: dict[str, Any]) -> Any:
    return api.post("/api/v1/agent/events/", body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def provider() -> Iterator[mock.Mock]:
    """A stand-in for the provider (the real local one is exercised in test_agent_watch_flow.py)."""
    fake = mock.Mock()
    with mock.patch("machines.services.lifecycle.get_provider", return_value=fake):
        yield fake


@pytest.fixture
def announced() -> Iterator[list[Any]]:
    events: list[Any] = []
    with mock.patch.object(liveness.publish, "publish_on_commit", side_effect=lambda e, **_: events.append(e)):
        yield events


def test_a_heartbeat_records_when_the_agent_was_seen_and_what_it_said(api: APIClient) -> None:
    machine, token = live_machine()
    session = active_session(machine)
    response = send(api, token, {**BEAT, "fileCount": 12, "uptime": 30.5})
    assert (response.status_code, response.json()) == (202, {"outcome": "recorded"})
    beat = AgentHeartbeat.objects.get(session=session)
    assert beat.joined is True
    assert beat.status == {"devServer": True, "devServerState": "running", "fileCount": 12, "uptime": 30.5}
    assert timezone.now() - beat.seen_at < timedelta(minutes=1)


def test_a_heartbeat_speaks_only_for_the_machines_own_session(api: APIClient) -> None:
    mine, my_token = live_machine()
    theirs, _ = live_machine()
    my_session, their_session = active_session(mine, "mine"), active_session(theirs, "theirs")
    body = {**BEAT, "session_id": str(their_session.id), "project_id": "theirs", "machine_id": str(theirs.id)}
    assert send(api, my_token, body).status_code == 202
    assert AgentHeartbeat.objects.filter(session=my_session).exists()
    assert not AgentHeartbeat.objects.filter(session=their_session).exists()


def test_a_heartbeat_without_a_live_session_or_with_bad_fields_writes_nothing(api: APIClient) -> None:
    machine, token = live_machine()
    assert send(api, token, BEAT).json() == {"outcome": "no session"}
    active_session(machine)
    refused = send(api, token, {**BEAT, "fileCount": "many", "supabaseConnected": "perhaps"})
    assert refused.status_code == 400
    assert set(refused.json()["error"]["details"]["fields"]) == {"fileCount", "supabaseConnected"}
    assert not AgentHeartbeat.objects.exists()
    assert send(api, "not-a-machine", BEAT).status_code == 401


def test_a_status_report_also_counts_as_seen_and_only_a_heartbeat_says_whether_it_joined(api: APIClient) -> None:
    machine, token = live_machine()
    session = active_session(machine)
    assert send(api, token, {"type": "status", "supabaseConnected": False}).status_code == 202
    assert AgentHeartbeat.objects.get(session=session).joined is None
    assert send(api, token, {"type": "heartbeat", "supabaseConnected": False}).status_code == 202
    assert AgentHeartbeat.objects.get(session=session).joined is False
    assert send(api, token, {"type": "heartbeat"}).status_code == 202
    assert AgentHeartbeat.objects.get(session=session).joined is False  # said nothing new about it


def test_degraded_is_recorded_with_its_reason_and_announced_once(announced: list[Any]) -> None:
    session = active_session(live_machine()[0])
    first = Verdict(Action.DEGRADED, "/health did not answer (no answer within 2 s)")
    assert services.session_apply_verdict(session=session, verdict=first, now=NOW)
    session.refresh_from_db()
    assert (session.health, session.health_detail, session.health_changed_at) == ("degraded", first.reason, NOW)
    later = Verdict(Action.DEGRADED, "/health did not answer (no answer within 3 s)")
    assert not services.session_apply_verdict(session=session, verdict=later, now=NOW + timedelta(seconds=2))
    health = [e for e in announced if e.kind == "session.health"]
    assert [(e.data["health"], e.data["detail"]) for e in health] == [("degraded", first.reason)]
    assert any(e.kind == "session.status" for e in announced)  # the row's change, for the session's page


def test_recovery_is_ok_again_and_gives_the_next_hang_its_restarts_back(announced: list[Any]) -> None:
    session = active_session(live_machine()[0])
    PreviewSession.objects.filter(id=session.id).update(
        health=SessionHealth.DEGRADED, health_detail="restarting", agent_restarts=1, agent_restart_streak=1
    )
    session.refresh_from_db()
    assert services.session_apply_verdict(session=session, verdict=Verdict(Action.OK), now=NOW)
    session.refresh_from_db()
    assert (session.health, session.health_detail, session.agent_restarts, session.agent_restart_streak) == (
        "ok",
        "",
        1,
        0,
    )
    assert [e.data["action"] for e in announced if e.kind == "session.health"] == ["ok"]


def test_a_restart_goes_through_the_provider_is_counted_and_recorded(provider: mock.Mock) -> None:
    machine, _ = live_machine()
    session = active_session(machine)
    verdict = Verdict(Action.RESTART, "no heartbeat for 16 s and /health did not answer")
    assert services.session_apply_verdict(session=session, verdict=verdict, now=NOW)
    provider.restart.assert_called_once_with(machine.provider_machine_id)
    session.refresh_from_db()
    assert (session.health, session.agent_restarts, session.agent_restart_streak) == ("degraded", 1, 1)
    assert session.health_detail == f"restarting the machine: {verdict.reason}"
    assert session.agent_restarted_at == NOW
    event = MachineEvent.objects.filter(machine=machine).latest("id")
    assert (event.from_state, event.to_state, event.detail) == (
        "started",
        "started",
        {"restarted": True, "reason": verdict.reason},
    )


def test_two_watchers_with_the_same_view_restart_once(provider: mock.Mock) -> None:
    session = active_session(live_machine()[0])
    stale_copy = PreviewSession.objects.get(id=session.id)
    verdict = Verdict(Action.RESTART, "no heartbeat")
    assert services.session_apply_verdict(session=session, verdict=verdict, now=NOW)
    assert not services.session_apply_verdict(session=stale_copy, verdict=verdict, now=NOW)
    assert provider.restart.call_count == 1


def test_a_provider_that_refuses_the_restart_leaves_the_machine_for_the_next_round(provider: mock.Mock) -> None:
    from machines.providers.base import Unavailable

    provider.restart.side_effect = Unavailable("fly is down")
    machine, _ = live_machine()
    session = active_session(machine)
    assert services.session_apply_verdict(session=session, verdict=Verdict(Action.RESTART, "hung"), now=NOW)
    session.refresh_from_db()
    assert session.agent_restart_streak == 1  # the attempt counts toward the limit
    assert not MachineEvent.objects.filter(machine=machine, detail__restarted=True).exists()


def test_failing_ends_the_session_agent_unresponsive_and_destroys_the_machine(
    provider: mock.Mock, announced: list[Any]
) -> None:
    machine, _ = live_machine()
    session = active_session(machine)
    reason = "no heartbeat for 50 s; still after 2 restart(s)"
    assert services.session_apply_verdict(session=session, verdict=Verdict(Action.FAIL, reason), now=NOW)
    session.refresh_from_db()
    machine.refresh_from_db()
    assert (session.status, session.end_reason, session.end_detail) == ("failed", "agent_unresponsive", reason)
    assert machine.state == "destroyed"
    provider.destroy.assert_called_once_with(machine.provider_machine_id, force=True)
    assert [e.data["action"] for e in announced if e.kind == "session.health"] == ["fail"]


def test_a_wait_verdict_changes_nothing() -> None:
    session = active_session(live_machine()[0])
    assert not services.session_apply_verdict(session=session, verdict=Verdict(Action.WAIT, "booting"), now=NOW)
    session.refresh_from_db()
    assert session.health == "unknown"


def test_the_session_api_shows_the_health_read_only(as_user: Any) -> None:
    user = uuid.uuid4()
    session = active_session(live_machine()[0])
    PreviewSession.objects.filter(id=session.id).update(user_id=user, health="degraded", health_detail="hung")
    client = as_user(user)
    body = client.get(f"/api/v1/sessions/{session.id}/").json()
    assert (body["health"], body["health_detail"]) == ("degraded", "hung")


def test_only_the_holder_of_the_lease_acts_and_a_sweep_waits_for_the_loop_to_let_go() -> None:
    assert tasks.agent_watch_round(holder="loop-a", ttl=30) == "agent watch: no active sessions"
    assert tasks.agent_watch_round(holder="loop-b", ttl=30) == "agent watch: another instance holds the lease"
    assert tasks.watch_agents() == "agent watch: another instance holds the lease"
    tasks.agent_watch_round(holder="loop-a", ttl=30, release=True, act=False)
    out = StringIO()
    call_command("sweep", "--only", "watch_agents", stdout=out)
    assert out.getvalue() == "watch_agents: agent watch: no active sessions\n"


def test_a_round_counts_its_verdicts(provider: mock.Mock) -> None:
    session = active_session(live_machine()[0])  # its machine has no address: no probe, and never heard from
    assert services.agents_watch() == {"restart": 1}
    session.refresh_from_db()
    assert session.agent_restarts == 1
    out = StringIO()
    call_command("watch_agents", "--once", stdout=out)
    assert out.getvalue().startswith("agent watch: 1 wait")  # within the restart's grace


def test_a_failing_round_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    from sessions.management.commands import watch_agents

    with mock.patch.object(watch_agents, "agent_watch_round", side_effect=RuntimeError("database away")):
        assert watch_agents._round("loop-a", 30) == "agent watch: round failed"
    assert "agent watch round failed" in caplog.text


def test_a_session_whose_machine_is_gone_is_left_to_reconciliation(provider: mock.Mock) -> None:
    machine, _ = live_machine()
    active_session(machine)
    machine_transition(machine=machine, to_state=MachineState.FAILED, source="provider")
    assert services.agents_watch() == {}
    provider.restart.assert_not_called()


def test_file_updates_the_agent_leaves_unanswered_make_the_session_degraded() -> None:
    from sessions.models import SessionTrace, TraceKind

    session = active_session(live_machine()[0])
    now = timezone.now()
    AgentHeartbeat.objects.create(session=session, seen_at=now, joined=True)
    for version, age in ((1, 30), (2, 12)):
        SessionTrace.objects.create(
            session=session,
            kind=TraceKind.SYNC,
            event="file:update",
            data={"path": "index.html", "version": version},
            at=now - timedelta(seconds=age),
        )
    SessionTrace.objects.create(
        session=session, kind=TraceKind.SYNC, event="file:synced", data={"path": "index.html", "version": 1}, at=now
    )
    assert services.agents_watch(now=lambda: now) == {"degraded": 1}  # no address: the heartbeat alone vouches
    session.refresh_from_db()
    assert session.health_detail == "1 file update(s) unacknowledged for 12 s"
