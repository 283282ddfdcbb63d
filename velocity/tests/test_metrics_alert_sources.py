"""The gauges the alert rules need beyond the counters: each live machine's CPU and memory (from its agent's
heartbeats, through the agent API) and the newest reconciliation's orphans and their cost (a real run against
the Fly fake), read back from ``GET /metrics``."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from machines.models import MachineState
from machines.providers.base import preview_metadata
from machines.services import machine_prepare, machine_reconcile, machine_transition
from machines.testing.fly_fake import FakeFly, Fault
from sessions.models import PreviewSession, SessionStatus
from sessions.services import session_end
from velocity.tests.test_metrics import scrape, value

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def live_session(status: str = SessionStatus.ACTIVE) -> tuple[PreviewSession, str]:
    machine, spec = machine_prepare(session=None, memory_mb=512)
    for state in (MachineState.STARTING, MachineState.STARTED):
        machine_transition(machine=machine, to_state=state, source="provider")
    session = PreviewSession.objects.create(user_id=uuid.uuid4(), project_id="p", machine=machine, status=status)
    return session, spec.env["MACHINE_TOKEN"]


def beat(api: APIClient, token: str, **fields: Any) -> Any:
    body = {"type": "heartbeat", "devServer": True, **fields}
    return api.post("/api/v1/agent/events/", body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


def ids(session: PreviewSession) -> dict[str, str]:
    assert session.machine_id is not None
    return {"machine": str(session.machine_id), "session": str(session.id)}


def test_a_heartbeats_cpu_and_memory_become_the_machines_gauges(api: APIClient) -> None:
    session, token = live_session()
    assert beat(api, token, cpuRatio=0.91, memoryRatio=0.42).status_code == 202
    _, samples = scrape(APIClient())
    assert value(samples, "velocity_machine_cpu_ratio", **ids(session)) == 0.91
    assert value(samples, "velocity_machine_memory_ratio", **ids(session)) == 0.42


def test_a_first_heartbeat_without_cpu_reports_memory_only(api: APIClient) -> None:
    session, token = live_session()
    beat(api, token, memoryRatio=0.5)
    _, samples = scrape(APIClient())
    assert ("velocity_machine_cpu_ratio", frozenset(ids(session).items())) not in samples
    assert value(samples, "velocity_machine_memory_ratio", **ids(session)) == 0.5


def test_stale_or_ended_sessions_report_no_resources(api: APIClient, settings: Any) -> None:
    _, stale_token = live_session()
    ended, ended_token = live_session()
    beat(api, stale_token, cpuRatio=0.99, memoryRatio=0.99)
    beat(api, ended_token, cpuRatio=0.99, memoryRatio=0.99)
    assert session_end(session=ended, reason="user", now=timezone.now(), release_later=True)
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.AGENT_STALE_SECONDS + 1)):
        families, samples = scrape(APIClient())
    assert {"velocity_machine_cpu_ratio", "velocity_machine_memory_ratio"} <= families
    assert not [key for key in samples if key[0].startswith("velocity_machine_") and "ratio" in key[0]]


def test_a_ratio_outside_zero_to_one_is_refused(api: APIClient) -> None:
    _, token = live_session()
    response = beat(api, token, cpuRatio=1.5)
    assert response.status_code == 400
    assert "cpuRatio" in str(response.json())


def test_the_newest_reconciliation_reports_its_orphans_and_their_cost(fly_api: FakeFly) -> None:
    families, samples = scrape(APIClient())
    assert "velocity_reconcile_orphan_cost_usd" in families
    assert not [key for key in samples if key[0].startswith("velocity_reconcile_")]  # never run: no figure
    fly_api.add_machine("velocity-stray", metadata=preview_metadata(session_id="s", project_id="p", user_id="u"))
    later = timezone.now() + timedelta(minutes=30)
    report = machine_reconcile(now=later, grace=timedelta(0))
    assert report is not None and report.orphans == 1 and report.orphan_cost > 0
    _, samples = scrape(APIClient())
    assert value(samples, "velocity_reconcile_orphans") == 1
    assert value(samples, "velocity_reconcile_orphan_cost_usd") == pytest.approx(float(report.orphan_cost))
    assert value(samples, "velocity_reconcile_orphan_hourly_cost_usd") == pytest.approx(
        float(report.orphan_hourly_cost)
    )
    assert value(samples, "velocity_reconcile_last_run_timestamp_seconds") == later.timestamp()


def test_a_clean_run_clears_the_orphan_cost_and_a_failed_listing_does_not(fly_api: FakeFly) -> None:
    fly_api.add_machine("velocity-stray", metadata=preview_metadata(session_id="s", project_id="p", user_id="u"))
    first = timezone.now() + timedelta(minutes=30)
    machine_reconcile(now=first, grace=timedelta(0))
    clean = machine_reconcile(now=first + timedelta(minutes=1), grace=timedelta(0))
    assert clean is not None and clean.orphans == 0
    fly_api.inject("list", *[Fault(status=503)] * 10)
    failed = machine_reconcile(now=first + timedelta(minutes=2), grace=timedelta(0))
    assert failed is not None and failed.error
    _, samples = scrape(APIClient())
    assert value(samples, "velocity_reconcile_orphan_cost_usd") == 0
    assert value(samples, "velocity_reconcile_last_run_timestamp_seconds") == clean.at.timestamp()
