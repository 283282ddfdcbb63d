"""Quota edits in the admin, operator ends and kills: each is saved through a service that audits it."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from dashboard.models import AuditRecord
from sessions.models import Quota
from sessions.testing import live_session

pytestmark = pytest.mark.django_db


def quota_form(user_id: uuid.UUID | None, budget: str) -> dict[str, str]:
    return {
        "user_id": str(user_id or ""),
        "max_concurrent_sessions": "2",
        "max_session_seconds": "7200",
        "monthly_machine_seconds": "360000",
        "monthly_budget_usd": budget,
        "max_memory_mb": "1024",
    }


def test_a_quota_added_in_the_admin_is_saved(admin_client: Any) -> None:
    user_id = uuid.uuid4()
    response = admin_client.post(reverse("admin:preview_sessions_quota_add"), quota_form(user_id, "7.50"))
    assert response.status_code == 302
    assert Quota.objects.get(user_id=user_id).monthly_budget_usd == Decimal("7.50")


def test_a_quota_change_in_the_admin_records_who_and_the_values_before_and_after(admin_client: Any) -> None:
    quota = Quota.objects.create(user_id=uuid.uuid4(), monthly_budget_usd=Decimal("5.00"))
    url = reverse("admin:preview_sessions_quota_change", args=[quota.pk])
    assert admin_client.post(url, quota_form(quota.user_id, "9.00")).status_code == 302
    entry = AuditRecord.objects.get(action="quota.update")
    assert entry.actor is not None and entry.actor.username == "admin"
    assert (entry.before["monthly_budget_usd"], entry.after["monthly_budget_usd"]) == ("5.00", "9.00")


def test_deleting_a_quota_in_the_admin_is_audited_too(admin_client: Any) -> None:
    quota = Quota.objects.create(user_id=uuid.uuid4())
    admin_client.post(reverse("admin:preview_sessions_quota_delete", args=[quota.pk]), {"post": "yes"})
    assert not Quota.objects.filter(pk=quota.pk).exists()
    assert AuditRecord.objects.filter(action="quota.delete", target_id=str(quota.pk)).count() == 1


def test_an_operator_end_is_audited_and_shown_on_the_session_page(staff_client: Any) -> None:
    session = live_session()
    staff_client.post(reverse("dashboard:session-end", args=[session.id]))
    entry = AuditRecord.objects.get(action="session.end")
    assert (entry.before["status"], entry.after["status"]) == ("active", "ended")
    page = staff_client.get(reverse("dashboard:session", args=[session.id])).content.decode()
    assert "session.end" in page
    assert "session.end" in staff_client.get(reverse("dashboard:audit")).content.decode()


def test_the_admin_lists_audit_records_read_only(admin_client: Any) -> None:
    session = live_session()
    admin_client.post(reverse("dashboard:session-end", args=[session.id]))
    listing = admin_client.get(reverse("admin:dashboard_auditrecord_changelist"))
    assert listing.status_code == 200 and b"session.end" in listing.content
    entry = AuditRecord.objects.get()
    assert admin_client.get(reverse("admin:dashboard_auditrecord_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:dashboard_auditrecord_delete", args=[entry.pk]), {"post": "yes"}).status_code
        == 403
    )
