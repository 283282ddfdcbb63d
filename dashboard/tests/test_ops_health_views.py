"""The overview's health of the moving parts (task worker, queue, stuck sessions, provider, realtime),
its per-route API figures, and reconciliation findings on the overview and the session's page."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from machines.models import ProviderHealth
from machines.providers import get_provider
from machines.services import machine_reconcile
from sessions.models import PreviewSession
from sessions.testing import live_session
from velocity import http_stats
from velocity.testing import cluster_beat

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_queue(isolated_task_queue: Any) -> Any:
    return isolated_task_queue


def overview(staff_client: Any) -> str:
    return str(staff_client.get(reverse("dashboard:overview")).content.decode())


def test_a_stopped_worker_is_called_out_with_the_age_of_its_last_heartbeat(staff_client: Any) -> None:
    cluster_beat(age=125, status="Working")
    body = overview(staff_client)
    assert "Stopped: no heartbeat for 2m 05s" in body and "(last said “working”)" in body


def test_a_running_worker_shows_its_workers_and_the_queue(staff_client: Any, own_queue: Any) -> None:
    cluster_beat(age=1, workers=3)
    data = staff_client.get(reverse("dashboard:overview"), {"format": "json"}).json()
    assert data["numbers"]["worker"] | {"heartbeat_age_s": 1} == {"alive": True, "workers": 3, "heartbeat_age_s": 1}
    assert data["numbers"]["queue"] == {"queued": 0, "oldest_age_s": None, "failures_last_hour": 0}
    assert "Running: 1 cluster, 3 workers" in data["regions"]["overview_health"]


def test_sessions_stuck_in_creating_are_counted_and_linked(staff_client: Any) -> None:
    stuck = PreviewSession.objects.create(user_id=uuid.uuid4(), project_id="stuck-demo")
    PreviewSession.objects.filter(id=stuck.id).update(created_at=timezone.now() - timedelta(minutes=3))
    PreviewSession.objects.create(user_id=uuid.uuid4(), project_id="just-asked")  # within the threshold
    body = staff_client.get(reverse("dashboard:overview"), {"format": "json"}).json()["regions"]["overview_health"]
    assert "1 session still creating after 90 s" in body
    assert reverse("dashboard:session", args=[stuck.id]) in body and "just-asked" not in body


def test_the_providers_last_success_and_failure_are_shown(staff_client: Any) -> None:
    now = timezone.now()
    ProviderHealth.objects.create(
        provider="local",
        last_ok_at=now - timedelta(minutes=5),
        last_failure_at=now - timedelta(minutes=1),
        last_failure_call="create",
        last_failure="Unavailable: cannot connect",
    )
    body = overview(staff_client)
    assert "Failing since" in body and "(create): Unavailable: cannot connect" in body
    assert 'data-stat="realtime.sockets"' in body


def test_the_api_figures_leave_the_agents_long_polls_out_and_each_route_has_a_row(staff_client: Any) -> None:
    http_stats.reset()
    for _ in range(10):
        http_stats.record("/api/v1/quota/", 200, 20.0, route="api/v1/quota/")
        http_stats.record("/api/v1/agent/assignment/", 200, 25_000.0, route="api/v1/agent/assignment/")
    data = staff_client.get(reverse("dashboard:overview"), {"format": "json"}).json()
    http_stats.reset()
    assert data["numbers"]["api"]["p95_ms"] == 20.0
    body = data["regions"]["overview_health"]
    assert '<tr data-route="api/v1/quota/">' in body
    assert '<tr data-route="api/v1/agent/assignment/" class="agent">' in body and "agent, long-poll" in body


def test_a_reconciliation_finding_is_a_linked_warning_on_the_overview_and_on_the_sessions_page(
    staff_client: Any, tmp_path: Path
) -> None:
    session = live_session()  # its machine row has no process behind it: a ghost
    with override_settings(VAR_DIR=tmp_path, MACHINE_PROVIDER="local"):
        get_provider.cache_clear()
        machine_reconcile(now=timezone.now(), grace=timedelta(0))
    get_provider.cache_clear()
    sentence = f"Buried ghost {session.machine_id}: gone at the provider"
    body = overview(staff_client)
    assert sentence in body
    assert reverse("dashboard:session", args=[session.id]) in body
    assert f"/admin/machines/machine/{session.machine_id}/change/" in body
    page = staff_client.get(reverse("dashboard:session", args=[session.id])).content.decode()
    assert f"reconciliation: {sentence}" in page  # the machine's event
    assert 'id="h-drift"' in page and sentence in page  # the findings


def test_the_admin_shows_findings_provider_health_and_heartbeats_read_only(admin_client: Any, tmp_path: Path) -> None:
    live_session()
    with override_settings(VAR_DIR=tmp_path, MACHINE_PROVIDER="local"):
        get_provider.cache_clear()
        machine_reconcile(now=timezone.now(), grace=timedelta(0))
    get_provider.cache_clear()
    cluster_beat(age=0)
    ProviderHealth.objects.create(provider="local", last_ok_at=timezone.now(), last_ok_call="list")
    for model in ("machines/driftfinding", "machines/providerhealth", "velocity/workerheartbeat"):
        page = admin_client.get(f"/admin/{model}/")
        assert page.status_code == 200 and b"to view |" in page.content  # "Select ... to view": read-only
    assert b"ghost" in admin_client.get("/admin/machines/driftfinding/").content
