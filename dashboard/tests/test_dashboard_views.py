"""The operator dashboard's pages: staff only, a fixed number of queries per list, actions through services."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dashboard.models import AuditRecord
from dashboard.views import USER_ACTIONS
from machines.models import EventSource, MachineState
from machines.providers import get_provider
from machines.services import machine_reconcile
from sessions import services
from sessions.models import AgentHeartbeat, EndReason, PreviewSession, SessionHealth, SessionStatus
from sessions.testing import live_session

pytestmark = pytest.mark.django_db

PAGES = ["overview", "sessions", "machines", "costs", "costs-csv", "audit", "playground", "policy"]


def page_urls() -> list[str]:
    session = live_session()
    assert session.machine_id is not None
    return [
        *(reverse(f"dashboard:{name}") for name in PAGES),
        reverse("dashboard:session", args=[session.id]),
        reverse("dashboard:session-end", args=[session.id]),
        reverse("dashboard:machine-kill", args=[session.machine_id]),
        reverse("dashboard:user", args=[session.user_id]),
        *(reverse("dashboard:user-action", args=[session.user_id, action]) for action in USER_ACTIONS),
        reverse("dashboard:policy") + "?idle_timeout_minutes=15",
        reverse("dashboard:policy-apply") + "?idle_timeout_minutes=15",
    ]


def test_anonymous_visitors_are_sent_to_the_login_page_from_every_page(client: Any) -> None:
    for url in page_urls():
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/?next="), url


def test_users_without_staff_rights_are_sent_to_the_login_page_too(client: Any, django_user_model: Any) -> None:
    client.force_login(django_user_model.objects.create_user("editor", password="pw-editor"))
    for url in page_urls():
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url


def test_staff_see_every_page(staff_client: Any) -> None:
    for url in page_urls():
        assert staff_client.get(url).status_code == 200, url


@pytest.mark.parametrize("name", ["sessions", "machines"])
def test_list_pages_run_the_same_number_of_queries_for_one_row_or_thirty(
    staff_client: Any, django_assert_num_queries: Any, name: str
) -> None:
    live_session(project="p-0")
    with CaptureQueriesContext(connection) as one:
        staff_client.get(reverse(f"dashboard:{name}"))
    for index in range(1, 30):
        live_session(project=f"p-{index}")
    with django_assert_num_queries(len(one.captured_queries)):
        response = staff_client.get(reverse(f"dashboard:{name}"))
    assert response.content.count(b"<tr data-") == 30


def test_the_overview_runs_the_same_number_of_queries_for_one_session_or_thirty(
    staff_client: Any, django_assert_num_queries: Any
) -> None:
    live_session(project="p-0")
    with CaptureQueriesContext(connection) as one:
        staff_client.get(reverse("dashboard:overview"))
    for index in range(1, 30):
        live_session(project=f"p-{index}")
    with django_assert_num_queries(len(one.captured_queries)):
        assert staff_client.get(reverse("dashboard:overview")).status_code == 200


def test_the_costs_page_runs_the_same_number_of_queries_for_one_user_or_thirty(
    staff_client: Any, django_assert_num_queries: Any
) -> None:
    live_session(project="p-0")
    with CaptureQueriesContext(connection) as one:
        staff_client.get(reverse("dashboard:costs"))
    for index in range(1, 30):
        live_session(project=f"p-{index}")
    with django_assert_num_queries(len(one.captured_queries)):
        response = staff_client.get(reverse("dashboard:costs"))
    assert response.content.count(b'href="/dashboard/users/') == 30


def test_the_end_button_ends_the_session_as_an_operator_and_destroys_its_machine(staff_client: Any) -> None:
    session = live_session()
    response = staff_client.post(reverse("dashboard:session-end", args=[session.id]))
    assert response.status_code == 302
    session.refresh_from_db()
    assert (session.status, session.end_reason) == (SessionStatus.ENDED, EndReason.OPERATOR)
    assert session.machine is not None
    session.machine.refresh_from_db()
    assert session.machine.state == MachineState.DESTROYED
    assert session.machine.events.filter(source=EventSource.OPERATOR, to_state="destroying").exists()


def test_the_kill_button_destroys_the_machine_and_ends_its_session(staff_client: Any) -> None:
    session = live_session()
    assert session.machine_id is not None
    confirm = staff_client.get(reverse("dashboard:machine-kill", args=[session.machine_id]))
    assert b"Kill the machine" in confirm.content
    response = staff_client.post(reverse("dashboard:machine-kill", args=[session.machine_id]))
    assert response["Location"] == reverse("dashboard:machines")
    session.refresh_from_db()
    assert session.machine is not None
    assert session.machine.state == MachineState.DESTROYED
    assert (session.status, session.end_reason) == (SessionStatus.ENDED, EndReason.OPERATOR)
    listing = staff_client.get(reverse("dashboard:machines"))
    assert str(session.machine_id).encode() not in listing.content


def test_killing_and_ending_write_audit_records(staff_client: Any) -> None:
    first, second = live_session(project="a"), live_session(project="b")
    staff_client.post(reverse("dashboard:session-end", args=[first.id]))
    staff_client.post(reverse("dashboard:machine-kill", args=[second.machine_id]))
    assert sorted(AuditRecord.objects.values_list("action", flat=True)) == ["machine.kill", "session.end"]


def test_the_json_status_endpoint_re_renders_the_live_regions(staff_client: Any) -> None:
    session = live_session(project="status-demo")
    data = staff_client.get(reverse("dashboard:overview"), {"format": "json"}).json()
    assert set(data["regions"]) == {"overview_health", "overview_numbers", "overview_sessions"}
    assert str(session.id) in data["regions"]["overview_sessions"]
    assert data["numbers"]["sessions"]["active"] == 1
    assert set(data["numbers"]["cost_usd"]) == {"today", "month_to_date", "projected_month"}


def test_the_session_list_filters_by_status_user_and_project_and_searches(staff_client: Any) -> None:
    kept, other = live_session(project="alpha"), live_session(project="beta")
    url = reverse("dashboard:sessions")
    for params in ({"project": "alpha"}, {"user": str(kept.user_id)}, {"q": "alp"}, {"q": str(kept.id)[:8]}):
        body = staff_client.get(url, params).content
        assert str(kept.id).encode() in body and str(other.id).encode() not in body, params
    assert str(kept.id).encode() not in staff_client.get(url, {"status": "ended"}).content
    assert staff_client.get(url, {"q": str(kept.id)})["Location"] == reverse("dashboard:session", args=[kept.id])


def test_the_session_page_shows_the_waterfall_the_deadlines_and_the_machine_events(staff_client: Any) -> None:
    session = live_session()
    body = staff_client.get(reverse("dashboard:session", args=[session.id])).content.decode()
    for text in ("queued", "machine created", "machine started", "agent ready", "dev server ready"):
        assert text in body
    assert "Idle deadline" in body and "TTL deadline" in body and "activate" not in body
    assert "starting → started" in body.replace("&nbsp;", " ")


def test_the_session_page_shows_a_degraded_agent_as_a_warning_with_its_reason_and_restarts(staff_client: Any) -> None:
    session = live_session()
    AgentHeartbeat.objects.create(session=session, seen_at=timezone.now() - timedelta(seconds=20), joined=True)
    reason = "no heartbeat for 20 s and /health did not answer (no answer within 2 s)"
    services.session_set_health(
        session=session, health=SessionHealth.DEGRADED, detail=reason, action="degraded", now=timezone.now()
    )
    PreviewSession.objects.filter(id=session.id).update(agent_restarts=1, agent_restarted_at=timezone.now())
    body = staff_client.get(reverse("dashboard:session", args=[session.id]) + "?format=json").json()
    state = body["regions"]["session_state"]
    assert 'class="card warning"' in state and 'data-health="degraded"' in state
    assert reason in state and "20 s ago" in state
    assert "<dt>Restarts</dt><dd>1" in state and "<dt>Joined</dt><dd>yes" in state
    flag = f'<span class="badge degraded" title="{reason}">degraded</span>'
    assert flag in staff_client.get(reverse("dashboard:sessions")).content.decode()
    assert flag in staff_client.get(reverse("dashboard:overview")).content.decode()  # its live sessions too


def test_the_costs_csv_has_one_row_per_user(staff_client: Any) -> None:
    first, second = live_session(project="a"), live_session(project="b")
    lines = staff_client.get(reverse("dashboard:costs-csv")).content.decode().strip().splitlines()
    assert lines[0].startswith("user_id,cost_usd,machine_seconds")
    assert {line.split(",")[0] for line in lines[1:]} == {str(first.user_id), str(second.user_id)}


def test_the_overview_shows_the_latest_reconciliation_report(staff_client: Any, tmp_path: Path) -> None:
    assert b"No reconciliation has run yet" in staff_client.get(reverse("dashboard:overview")).content
    session = live_session()  # its machine row has no process behind it: a ghost
    with override_settings(VAR_DIR=tmp_path, MACHINE_PROVIDER="local"):
        get_provider.cache_clear()
        machine_reconcile(now=timezone.now(), grace=timedelta(0))
    get_provider.cache_clear()
    body = staff_client.get(reverse("dashboard:overview")).content.decode()
    assert "buried 1 ghost(s)" in body and f"Buried ghost {session.machine_id}" in body
