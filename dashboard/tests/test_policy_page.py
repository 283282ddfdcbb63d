"""The policy dry-run page: the answer and its chart for staff, a bad policy refused in place, and applying a
policy as a separate, confirmed and audited action."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from dashboard.models import AuditRecord
from dashboard.tests.dashboard_setup import seed_history, seed_policy_activity
from sessions.dry_run import Policy
from sessions.models import PreviewSession, Quota, SessionPolicy, SessionStatus
from sessions.policy_selectors import live_policy, policy_dry_run

pytestmark = pytest.mark.django_db

PAGE = "/dashboard/policy/"


def stat(html: str, name: str) -> str:
    found = re.search(rf'data-stat="{re.escape(name)}">([^<]*)<', html)
    assert found, name
    return found.group(1).strip()


def test_the_page_shows_the_dry_runs_answer_and_a_bar_per_day(staff_client: Any) -> None:
    now = timezone.now()
    seed_history(days=10, users=3, now=now)
    seed_policy_activity()
    with time_machine.travel(now, tick=False):  # the page replays at the same moment as the expectation
        expected = policy_dry_run(Policy(idle_timeout_minutes=15), now=now, days=30)
        response = staff_client.get(PAGE, {"idle_timeout_minutes": 15})
    html = response.content.decode()

    assert response.status_code == 200
    assert expected.sessions_ended_earlier > 0 and expected.sessions_edited_after_stop > 0
    assert f"{expected.sessions_ended_earlier} of {expected.sessions_considered} sessions" in html
    assert stat(html, "dry.users") == str(expected.users_affected)
    assert stat(html, "dry.wrong") == str(expected.sessions_edited_after_stop)
    assert stat(html, "dry.hours") == f"{expected.machine_hours_saved:.2f} h"
    assert html.count('<rect class="bar"') == len(expected.per_day())
    assert "Apply this policy" in html
    assert not SessionPolicy.objects.exists()  # a dry run changes nothing


def test_a_bad_policy_is_refused_on_the_page_with_its_reason(staff_client: Any) -> None:
    response = staff_client.get(PAGE, {"idle_timeout_minutes": 0, "ttl_minutes": "soon"})
    html = response.content.decode()
    assert response.status_code == 400
    assert "between 1 and 30" in html and "Enter a whole number." in html
    assert 'id="dry-run-answer"' not in html


def test_applying_asks_first_then_changes_the_live_rules_with_an_audit_record(staff_client: Any) -> None:
    quiet = PreviewSession.objects.create(
        user_id=uuid.uuid4(),
        project_id="quiet",
        status=SessionStatus.ACTIVE,
        last_activity_at=timezone.now() - timedelta(minutes=20),
    )
    confirm = staff_client.get(reverse("dashboard:policy-apply"), {"idle_timeout_minutes": 15, "max_concurrent": 1})
    assert confirm.status_code == 200
    assert "1 live session quiet longer than 15 minutes would end then" in confirm.content.decode()
    assert not SessionPolicy.objects.exists()  # asking changes nothing

    body = {"idle_timeout_minutes": 15, "max_concurrent": 1, "reason": "idle previews cost us $40 a week"}
    response = staff_client.post(reverse("dashboard:policy-apply"), body, follow=True)

    assert "Policy applied: idle timeout 15 min" in response.content.decode()
    assert (live_policy().idle_timeout_minutes, live_policy().max_concurrent) == (15, 1)
    assert Quota.objects.get(user_id=None).max_concurrent_sessions == 1
    record = AuditRecord.objects.get(action="policy.apply")
    assert record.actor == staff_client.operator
    assert (record.before["idle_timeout_minutes"], record.after["idle_timeout_minutes"]) == (30, 15)
    assert record.after["reason"] == "idle previews cost us $40 a week"
    quiet.refresh_from_db()
    assert quiet.status == SessionStatus.ACTIVE  # the reaper ends it on its round, not the apply itself


def test_a_non_staff_user_cannot_apply_a_policy(client: Any, django_user_model: Any) -> None:
    client.force_login(django_user_model.objects.create_user("editor", password="pw-editor"))
    response = client.post(reverse("dashboard:policy-apply"), {"idle_timeout_minutes": 1, "max_concurrent": 1})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not SessionPolicy.objects.exists() and not AuditRecord.objects.exists()


def test_the_admin_shows_the_activity_minutes_and_the_policy_read_only(admin_client: Any) -> None:
    seed_history(days=2, users=1)
    assert seed_policy_activity() > 0
    SessionPolicy.objects.create(idle_timeout_seconds=900)
    for model in ("sessionactivity", "sessionpolicy"):
        assert admin_client.get(f"/admin/preview_sessions/{model}/").status_code == 200
        assert admin_client.get(f"/admin/preview_sessions/{model}/add/").status_code == 403
    row = SessionPolicy.objects.get()
    admin_client.post(f"/admin/preview_sessions/sessionpolicy/{row.pk}/change/", {"idle_timeout_seconds": 60})
    row.refresh_from_db()
    assert row.idle_timeout_seconds == 900  # changed only by applying a policy (audited)
