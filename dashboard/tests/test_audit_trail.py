"""One audit record per operator or service-role write, whichever door the write came through: the API (the
service role), the dashboard's pages, the admin. The lower layers knock on ``velocity.audit``; the records are
written here."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from dashboard.models import AuditRecord
from sessions import services
from sessions.models import FlagScope, PreviewTarget, Quota
from sessions.testing import live_session
from velocity.auth import issue_token

pytestmark = pytest.mark.django_db

LIMITS = {
    "max_concurrent_sessions": 3,
    "max_session_seconds": 3600,
    "monthly_machine_seconds": 7200,
    "monthly_budget_usd": "12.50",
    "max_memory_mb": 1024,
}


@pytest.fixture
def service() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_token(sub=None, role='service_role')}")
    return client


def records() -> list[tuple[str, str]]:
    return list(AuditRecord.objects.order_by("id").values_list("action", "actor_label"))


def test_the_apis_quota_put_is_audited_once_per_write(service: APIClient) -> None:
    user = uuid.uuid4()
    assert service.put(f"/api/v1/quotas/{user}/", LIMITS, format="json").status_code == 201
    changed = {**LIMITS, "monthly_budget_usd": "20.00"}
    assert service.put(f"/api/v1/quotas/{user}/", changed, format="json").status_code == 200
    assert records() == [("quota.create", "service_role"), ("quota.update", "service_role")]
    update = AuditRecord.objects.get(action="quota.update")
    assert (update.target_id, update.before["monthly_budget_usd"], update.after["monthly_budget_usd"]) == (
        str(Quota.objects.get(user_id=user).pk),
        "12.50",
        "20.00",
    )


def test_a_quota_edit_in_the_admin_is_audited_once(admin_client: Client) -> None:
    quota = Quota.objects.create(user_id=uuid.uuid4())
    form = {"user_id": str(quota.user_id), **{k: str(v) for k, v in LIMITS.items()}}
    assert admin_client.post(reverse("admin:preview_sessions_quota_change", args=[quota.pk]), form).status_code == 302
    assert records() == [("quota.update", "")]


def test_each_project_owner_and_member_change_is_audited_once(service: APIClient) -> None:
    owner, member = uuid.uuid4(), uuid.uuid4()
    service.put("/api/v1/projects/trail/", {"owner_id": str(owner)}, format="json")
    service.post("/api/v1/projects/trail/members/", {"user_id": str(member)}, format="json")
    service.delete(f"/api/v1/projects/trail/members/{member}/")
    assert [action for action, _ in records()] == ["project.owner", "project.member", "project.member_removed"]


def test_a_kill_is_one_record_although_it_ends_the_session_too(staff_client: Any) -> None:
    session = live_session()
    staff_client.post(reverse("dashboard:machine-kill", args=[session.machine_id]))
    assert records() == [("machine.kill", "")]
    assert AuditRecord.objects.get().actor == staff_client.operator


def test_an_end_is_one_record(staff_client: Any) -> None:
    session = live_session()
    staff_client.post(reverse("dashboard:session-end", args=[session.id]))
    staff_client.post(reverse("dashboard:session-end", args=[session.id]))  # already ended: nothing to record
    assert records() == [("session.end", "")]


def test_a_flag_flipped_in_the_admins_list_is_audited_once(admin_client: Client) -> None:
    flag = services.preview_flag_set(scope=FlagScope.EVERYONE, target=PreviewTarget.NEW)
    changelist = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(flag.id),
        "form-0-target": PreviewTarget.LEGACY,
        "_save": "Save",
    }
    response = admin_client.post("/admin/preview_sessions/previewflag/", changelist)
    assert response.status_code == 302
    entry = AuditRecord.objects.get()
    assert (entry.action, entry.before["target"], entry.after["target"]) == ("flag.update", "new", "legacy")


def test_a_write_rolled_back_takes_its_record_with_it() -> None:
    with transaction.atomic():
        services.quota_set(user_id=uuid.uuid4(), values={"max_memory_mb": 512}, actor_label="service_role")
        transaction.set_rollback(True)
    assert records() == []
