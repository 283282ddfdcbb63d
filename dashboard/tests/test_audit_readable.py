"""Audit you can read: each record names what it is about (a quota by its user, the default quota as such),
shows only the fields that changed, old → new, keeps the operator's reason apart, and can be filtered by
actor, action, target (an id or its prefix) and time. Machine events read as sentences."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from dashboard import audit_log
from dashboard.models import AuditRecord
from sessions import services
from sessions.models import Quota

pytestmark = pytest.mark.django_db


def change_quota(user: uuid.UUID, **values: Any) -> None:
    services.quota_set(user_id=user, values=values, actor_label="service_role")


def only_row(**params: str) -> audit_log.AuditRow:
    records = audit_log.audit_records(audit_log.audit_filters_parse(params))
    (row,) = audit_log.audit_rows(records)
    return row


def test_a_quota_change_is_about_its_user_and_shows_only_what_changed() -> None:
    user = uuid.uuid4()
    change_quota(user, max_concurrent_sessions=2, max_memory_mb=512)
    change_quota(user, max_concurrent_sessions=5)
    row = only_row(action="quota.update")
    assert (row.target.kind, row.target.ident, row.target.url) == ("user", str(user), f"/dashboard/users/{user}/")
    assert row.changes == [audit_log.Change("max_concurrent_sessions", "2", "5")]


def test_created_and_deleted_rows_say_so() -> None:
    user = uuid.uuid4()
    change_quota(user, max_concurrent_sessions=3)
    services.quota_reset(user_id=user, actor=None, actor_label="service_role")
    created, deleted = audit_log.audit_rows(AuditRecord.objects.order_by("id"))
    assert (created.shape, deleted.shape) == ("created", "deleted")
    assert audit_log.Change("max_concurrent_sessions", "(none)", "3") in created.changes


def test_the_default_quota_is_named_as_such() -> None:
    default = Quota.objects.get(user_id=None)
    record = AuditRecord(action="quota.update", target_type="preview_sessions.quota", target_id=str(default.id))
    record.before, record.after = default.audit_values(), {**default.audit_values(), "max_memory_mb": "2048"}
    assert audit_log.audit_target(record).text == "default quota"


def test_the_reason_is_kept_apart_from_the_changes() -> None:
    user = uuid.uuid4()
    services.user_block(user_id=user, reason="cost spike", actor=None, actor_label="on-call", now=timezone.now())
    row = only_row(action="user.block")
    assert row.reason == "cost spike"
    assert "reason" not in [change.name for change in row.changes]


def test_filters_by_actor_action_target_prefix_and_time() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    change_quota(first, max_concurrent_sessions=1)
    services.user_block(user_id=second, reason="", actor=None, actor_label="alice", now=timezone.now())
    assert only_row(actor="ALI").record.action == "user.block"
    assert only_row(action="quota").target.ident == str(first)
    assert only_row(target=first.hex[:8]).target.ident == str(first)
    assert only_row(target=str(second)[:13]).record.action == "user.block"
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert not audit_log.audit_records(audit_log.audit_filters_parse({"since": tomorrow})).exists()


def test_a_time_that_cannot_be_read_is_named_and_not_applied() -> None:
    filters = audit_log.audit_filters_parse({"since": "yesterday", "until": "2026-13-45"})
    assert filters.since is None and filters.until is None
    assert filters.problems[0].startswith("'yesterday' is not a time for 'since'")
    assert len(filters.problems) == 2


def test_the_audit_page_shows_the_diff_paginated_with_the_filters(staff_client: Any) -> None:
    user = uuid.uuid4()
    change_quota(user, max_concurrent_sessions=2)
    change_quota(user, max_concurrent_sessions=7)
    body = staff_client.get(reverse("dashboard:audit"), {"action": "quota.update"}).content.decode()
    assert "<del>2</del> → <ins>7</ins>" in body
    assert f'href="/dashboard/users/{user}/"' in body
    assert "quota.create</code>" not in body


@pytest.mark.parametrize(
    ("detail", "sentence"),
    [
        ({"reason": "pool shrunk"}, "pool shrunk"),
        ({"session_end_reason": "idle"}, "its session ended (idle)"),
        ({"actor": "alice"}, "by alice"),
        ({"error": "boom"}, "error: boom"),
        ({"exit_code": 137}, "exit code: 137"),
        ({"claimed_by_session": "not-an-id"}, "claimed by session: not-an-id"),
        ({"restarted": True, "reason": "no heartbeat for 16 s"}, "restarted by the agent watch; no heartbeat for 16 s"),
    ],
)
def test_machine_events_read_as_sentences(detail: dict[str, Any], sentence: str) -> None:
    rendered = Template("{% load dashboard %}{% event_sentence detail %}").render(Context({"detail": detail}))
    assert rendered == sentence


def test_a_claim_links_its_session() -> None:
    session_id = uuid.uuid4()
    rendered = Template("{% load dashboard %}{% event_sentence d %}").render(
        Context({"d": {"claimed_by_session": str(session_id)}})
    )
    assert (
        rendered
        == f'claimed by session <a href="/dashboard/sessions/{session_id}/"><code>{str(session_id)[:8]}</code></a>'
    )
