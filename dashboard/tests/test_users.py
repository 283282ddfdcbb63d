"""The user page and the actions on a user: the quota that applies (and where from) edited inline, spend and
live sessions, "End all", "Block", and "End all and block" with a reason; each audited once."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dashboard import services
from dashboard.models import AuditRecord
from machines.models import MachineState
from sessions.models import EndReason, PreviewSession, Quota, SessionStatus, UserBlock
from sessions.testing import live_session

pytestmark = pytest.mark.django_db

LIMITS = {
    "max_concurrent_sessions": 4,
    "max_session_seconds": 3600,
    "monthly_machine_seconds": 7200,
    "monthly_budget_usd": "12.50",
    "max_memory_mb": 1024,
}


def page(staff_client: Any, user: uuid.UUID) -> str:
    response = staff_client.get(reverse("dashboard:user", args=[user]))
    assert response.status_code == 200
    return str(response.content.decode())


def test_the_user_page_shows_the_default_quota_as_the_one_that_applies(staff_client: Any) -> None:
    session = live_session(project="spiky")
    body = page(staff_client, session.user_id)
    assert "the default quota" in body
    assert "spiky" in body and str(session.id)[:8] in body
    assert "512 MB" in body and "Cost so far" in body and "End all and block" in body


def test_saving_the_quota_creates_the_override_with_one_record(staff_client: Any) -> None:
    user = live_session().user_id
    response = staff_client.post(reverse("dashboard:user-quota", args=[user]), LIMITS)
    assert response.status_code == 302
    quota = Quota.objects.get(user_id=user)
    assert (quota.max_concurrent_sessions, quota.monthly_budget_usd) == (4, Decimal("12.50"))
    record = AuditRecord.objects.get()
    assert (record.action, record.actor, record.after["user_id"]) == ("quota.create", staff_client.operator, str(user))
    assert "their own override" in page(staff_client, user)


def test_an_unchanged_save_writes_no_record_and_a_change_writes_one(staff_client: Any) -> None:
    user = uuid.uuid4()
    url = reverse("dashboard:user-quota", args=[user])
    staff_client.post(url, LIMITS)
    staff_client.post(url, LIMITS)
    staff_client.post(url, {**LIMITS, "max_concurrent_sessions": 1})
    assert list(AuditRecord.objects.order_by("id").values_list("action", flat=True)) == ["quota.create", "quota.update"]
    assert Quota.objects.get(user_id=user).max_concurrent_sessions == 1


def test_a_bad_limit_is_refused_with_the_field_named_and_nothing_saved(staff_client: Any) -> None:
    user = uuid.uuid4()
    response = staff_client.post(reverse("dashboard:user-quota", args=[user]), {**LIMITS, "max_memory_mb": "-5"})
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert not Quota.objects.filter(user_id=user).exists() and not AuditRecord.objects.exists()


def test_reset_to_default_deletes_the_override_audited(staff_client: Any) -> None:
    user = uuid.uuid4()
    staff_client.post(reverse("dashboard:user-quota", args=[user]), LIMITS)
    staff_client.post(reverse("dashboard:user-quota-reset", args=[user]))
    staff_client.post(reverse("dashboard:user-quota-reset", args=[user]))  # nothing left to reset: no record
    assert not Quota.objects.filter(user_id=user).exists()
    assert list(AuditRecord.objects.order_by("id").values_list("action", flat=True)) == ["quota.create", "quota.delete"]


def test_end_all_and_block_ends_every_live_session_destroys_the_machines_and_blocks(staff_client: Any) -> None:
    user = uuid.uuid4()
    sessions = [live_session(project=f"p{i}", user_id=user) for i in range(2)]
    bystander = live_session(project="other")
    confirm = staff_client.get(reverse("dashboard:user-action", args=[user, "stop"]))
    assert "p0" in confirm.content.decode() and "user.blocked" in confirm.content.decode()
    response = staff_client.post(reverse("dashboard:user-action", args=[user, "stop"]), {"reason": "runaway spend"})
    assert response.status_code == 302
    for session in sessions:
        session.refresh_from_db()
        assert (session.status, session.end_reason) == (SessionStatus.ENDED, EndReason.OPERATOR)
        assert session.end_detail == "ended by operator: runaway spend"
        assert session.machine is not None and session.machine.state == MachineState.DESTROYED
    assert UserBlock.objects.get(user_id=user).reason == "runaway spend"
    bystander.refresh_from_db()
    assert bystander.status == SessionStatus.ACTIVE
    records = AuditRecord.objects.order_by("id")
    assert [(r.action, r.target_id, r.after["reason"]) for r in records] == [
        ("user.block", str(user), "runaway spend"),
        ("user.end_all", str(user), "runaway spend"),
    ]


def test_end_all_with_nothing_live_writes_no_record(staff_client: Any) -> None:
    ended = services.user_sessions_end_all(user_id=uuid.uuid4(), operator=staff_client.operator, now=timezone.now())
    assert ended == 0 and not AuditRecord.objects.exists()


def test_block_then_unblock_from_the_page(staff_client: Any) -> None:
    user = live_session().user_id
    staff_client.post(reverse("dashboard:user-action", args=[user, "block"]), {"reason": "abuse"})
    assert "New sessions are blocked" in page(staff_client, user)
    staff_client.post(reverse("dashboard:user-action", args=[user, "unblock"]), {"reason": ""})
    assert not UserBlock.objects.exists()
    assert PreviewSession.objects.get(user_id=user).status == SessionStatus.ACTIVE  # a block ends nothing


def test_an_unknown_action_is_a_404(staff_client: Any) -> None:
    assert staff_client.get(reverse("dashboard:user-action", args=[uuid.uuid4(), "delete"])).status_code == 404


def test_an_end_keeps_the_operators_reason(staff_client: Any) -> None:
    session = live_session()
    staff_client.post(reverse("dashboard:session-end", args=[session.id]), {"reason": "user asked on chat"})
    session.refresh_from_db()
    assert session.end_detail == "ended by operator: user asked on chat"
    assert AuditRecord.objects.get().after["reason"] == "user asked on chat"


def test_the_kill_confirmation_names_the_project_the_user_and_the_cost(staff_client: Any) -> None:
    session = live_session(project="costly")
    body = staff_client.get(reverse("dashboard:machine-kill", args=[session.machine_id])).content.decode()
    assert "costly" in body
    assert reverse("dashboard:user", args=[session.user_id]) in body
    assert "so far" in body and "an hour" in body and 'name="reason"' in body


def test_a_kill_keeps_the_reason_in_the_record_and_the_sessions_end(staff_client: Any) -> None:
    session = live_session()
    staff_client.post(reverse("dashboard:machine-kill", args=[session.machine_id]), {"reason": "stuck"})
    session.refresh_from_db()
    assert session.end_detail == "killed by an operator: stuck"
    assert AuditRecord.objects.get().after["reason"] == "stuck"


def test_user_ids_link_to_the_user_page_from_the_lists(staff_client: Any) -> None:
    session = live_session()
    link = reverse("dashboard:user", args=[session.user_id]).encode()
    for name in ("overview", "sessions", "machines", "costs"):
        assert link in staff_client.get(reverse(f"dashboard:{name}")).content, name
    assert link in staff_client.get(reverse("dashboard:session", args=[session.id])).content


def test_users_without_staff_rights_cannot_act_on_a_user(client: Any, django_user_model: Any) -> None:
    session = live_session()
    client.force_login(django_user_model.objects.create_user("editor", password="pw-editor"))
    actions: list[tuple[str, list[Any]]] = [
        ("user-quota", [session.user_id]),
        ("user-quota-reset", [session.user_id]),
        ("user-action", [session.user_id, "stop"]),
    ]
    for name, args in actions:
        response = client.post(reverse(f"dashboard:{name}", args=args), {**LIMITS, "reason": "x"})
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), name
    session.refresh_from_db()
    assert session.status == SessionStatus.ACTIVE
    assert not Quota.objects.filter(user_id=session.user_id).exists() and not UserBlock.objects.exists()


def test_the_user_page_runs_the_same_number_of_queries_for_one_live_session_or_two(
    staff_client: Any, django_assert_num_queries: Any
) -> None:
    user = uuid.uuid4()
    live_session(project="first", user_id=user)
    url = reverse("dashboard:user", args=[user])
    with CaptureQueriesContext(connection) as one:
        staff_client.get(url)
    live_session(project="second", user_id=user)
    with django_assert_num_queries(len(one.captured_queries)):
        body = staff_client.get(url).content.decode()
    assert body.count("<tr data-session=") == 2


def test_the_live_region_is_re_rendered_for_the_status_fallback(staff_client: Any) -> None:
    session = live_session()
    data = staff_client.get(reverse("dashboard:user", args=[session.user_id]), {"format": "json"}).json()
    assert set(data["regions"]) == {"user_live"}
    assert str(session.id) in data["regions"]["user_live"]


def test_the_session_page_says_its_user_is_blocked(staff_client: Any) -> None:
    session = live_session()
    services.user_block_by_operator(user_id=session.user_id, operator=staff_client.operator, now=timezone.now())
    body = staff_client.get(reverse("dashboard:session", args=[session.id])).content.decode()
    assert "new sessions blocked" in body
