"""The policy dry-run through the real paths: activity minutes written from the observer and heartbeats, the
service-role API replaying them, applying a policy (audited) and the reaper obeying it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db.models import Sum
from django.utils import timezone
from pytest_django.fixtures import SettingsWrapper
from rest_framework.test import APIClient

from realtime_bridge.observers import Observed
from sessions import tasks
from sessions.models import PreviewSession, Quota, SessionActivity, SessionPolicy, SessionStatus
from sessions.policy_selectors import idle_timeout_seconds
from sessions.services.activity import (
    activity_dropped,
    activity_flush,
    activity_observe,
    activity_pending,
    activity_reset,
    activity_touch,
    session_activity_prune,
)
from sessions.tests.conftest import error_code

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
# A session without a machine is priced as a shared 1-CPU machine of its size: 4096 MB is
# ($0.695 + 4 GB * $5) a 730-hour month = $20.695 / 730 per hour.
HOURLY_4GB = Decimal("20.695") / 730


@pytest.fixture(autouse=True)
def empty_tally() -> Iterator[None]:
    activity_reset()
    yield
    activity_reset()


def observed(project: str, event: str = "file:update", *, size: int = 10, at: datetime | None = None) -> Observed:
    payload = {"path": "src/App.tsx", "content": "x" * size, "version": 1}
    return Observed(project, event, {"size": size}, payload, "endpoint", at or timezone.now())


def session(user: uuid.UUID, start: datetime, end: datetime | None, *, project: str = "p") -> PreviewSession:
    status = SessionStatus.ACTIVE if end is None else SessionStatus.ENDED
    return PreviewSession.objects.create(
        user_id=user, project_id=project, status=status, created_at=start, ended_at=end, memory_mb=4096
    )


def minutes(of: PreviewSession, *moments: datetime, touches: bool = False) -> None:
    SessionActivity.objects.bulk_create(
        SessionActivity(session=of, minute=m, edits=0 if touches else 1, touches=1 if touches else 0) for m in moments
    )


def at(hour: int, minute: int) -> datetime:
    return NOW.replace(hour=hour, minute=minute)


# --- the activity minutes ---------------------------------------------------------------------------------


def test_edits_and_heartbeats_add_up_in_one_row_per_session_and_minute() -> None:
    live = session(uuid.uuid4(), NOW, None, project="busy")
    minute = NOW.replace(minute=7)
    for second in (0, 20, 59):  # one minute, however many broadcasts
        activity_observe(observed("busy", size=10, at=minute + timedelta(seconds=second)))
    activity_observe(observed("busy", "agent:log", at=minute))  # not an edit
    activity_observe(observed("nobody-previews-this", at=minute))  # no live session: kept nowhere
    activity_touch(session_id=live.id, at=minute + timedelta(seconds=30))
    activity_flush()
    activity_observe(observed("busy", "file:delete", size=0, at=minute + timedelta(seconds=45)))
    activity_flush()  # the second write adds to the first (an upsert), it does not replace it

    row = SessionActivity.objects.get()
    assert (row.session_id, row.minute) == (live.id, minute)
    assert (row.edits, row.edit_bytes, row.touches) == (4, 30, 1)


def test_a_full_tally_drops_new_counters_and_keeps_adding_to_the_ones_it_has(settings: SettingsWrapper) -> None:
    settings.SESSION_ACTIVITY_BUFFER = 1
    live = session(uuid.uuid4(), NOW, None, project="busy")
    activity_observe(observed("busy", at=NOW))
    activity_touch(session_id=live.id, at=NOW)  # a second counter: dropped, counted
    activity_observe(observed("busy", at=NOW + timedelta(seconds=30)))  # the first one's minute: still added
    assert (activity_pending(), activity_dropped()) == (1, 1)
    activity_flush()
    assert (SessionActivity.objects.get().edits, SessionActivity.objects.get().touches) == (2, 0)


def test_a_heartbeat_through_the_api_counts_as_activity(as_user: Callable[..., APIClient]) -> None:
    client = as_user()
    created = client.post("/api/v1/sessions/", {"project_id": "beating"}, format="json").json()
    assert client.post(f"/api/v1/sessions/{created['id']}/heartbeat/").status_code == 200
    activity_flush()
    rows = SessionActivity.objects.filter(session_id=created["id"])
    assert rows.aggregate(touches=Sum("touches"), edits=Sum("edits")) == {"touches": 1, "edits": 0}


def test_the_prune_keeps_exactly_the_retention(settings: SettingsWrapper) -> None:
    settings.SESSION_ACTIVITY_RETENTION_DAYS = 35
    kept = session(uuid.uuid4(), NOW - timedelta(days=40), NOW)
    minutes(kept, NOW - timedelta(days=35, minutes=1), NOW - timedelta(days=35), NOW - timedelta(days=1))
    assert session_activity_prune(now=NOW) == 1
    assert SessionActivity.objects.count() == 2


# --- the service-role API ---------------------------------------------------------------------------------


def history() -> tuple[PreviewSession, PreviewSession]:
    """One user: X 09:00 → 10:00 with a heartbeat in minute 09:00 and edits in 09:10 and 09:50; Y 10:30 → 11:30
    with an edit every five minutes."""
    user = uuid.uuid4()
    x = session(user, at(9, 0), at(10, 0))
    minutes(x, at(9, 0), touches=True)
    minutes(x, at(9, 10), at(9, 50))
    y = session(user, at(10, 30), at(11, 30), project="q")
    minutes(y, *(at(10, 30) + timedelta(minutes=5 * step) for step in range(12)))
    return x, y


def test_the_dry_run_answers_what_the_idle_timeout_would_have_changed(
    as_user: Callable[..., APIClient], audits: list[dict[str, Any]]
) -> None:
    x, _y = history()
    with time_machine.travel(NOW, tick=False):
        response = as_user(role="service_role").post(
            "/api/v1/policy/dry-run/", {"idle_timeout_minutes": 15}, format="json"
        )
    body = response.json()

    # X: activity ends 09:01, 09:11, 09:51; the 40-minute gap after 09:11 stops it at 09:26; 09:26 → 10:00 is
    # 34 minutes of a $20.695/730-an-hour machine; the 09:50 edit came after. Y never pauses 15 minutes.
    saved = Decimal(34) / 60 * HOURLY_4GB
    assert response.status_code == 200
    assert body["since"] == "2026-03-20T09:00:00Z"  # the history began then, not 30 days ago
    assert (body["sessions_considered"], body["sessions_ended_earlier"], body["users_affected"]) == (2, 1, 1)
    assert body["machine_hours_saved"] == "0.57"  # 34 / 60
    assert body["dollars_saved"] == str(saved.quantize(Decimal("0.0001")))  # 0.0161
    assert body["sessions_edited_after_stop"] == 1
    assert body["by_rule"] == {"idle": 1, "ttl": 0, "concurrency": 0}
    assert body["sessions"][0] | {"saved_usd": None} == {
        "session_id": str(x.id),
        "user_id": str(x.user_id),
        "rule": "idle",
        "at": "2026-03-20T09:26:00Z",
        "ended_at": "2026-03-20T10:00:00Z",
        "saved_seconds": 34 * 60,
        "saved_usd": None,
        "edited_after": True,
    }
    assert [(day["day"], day["sessions"]) for day in body["per_day"]] == [("2026-03-20", 1)]
    assert audits == [] and not SessionPolicy.objects.exists()  # a dry run changes nothing


def test_the_dry_run_and_its_apply_refuse_a_users_token(as_user: Callable[..., APIClient]) -> None:
    client = as_user()  # an ordinary user's token (a stranger to operations)
    for path in ("/api/v1/policy/", "/api/v1/policy/dry-run/", "/api/v1/policy/apply/"):
        method = client.get if path == "/api/v1/policy/" else client.post
        response = method(path, {"idle_timeout_minutes": 15}, format="json")
        assert (response.status_code, error_code(response)) == (403, "auth.forbidden")
    assert not SessionPolicy.objects.exists()


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"idle_timeout_minutes": 0}, "policy.invalid", "idle_timeout_minutes"),
        ({"idle_timeout_minutes": 31}, "policy.invalid", "idle_timeout_minutes"),  # past PREVIEW_INACTIVITY_TIMEOUT
        ({"ttl_minutes": 121}, "policy.invalid", "ttl_minutes"),  # past PREVIEW_SESSION_TTL
        ({"max_concurrent": 0}, "policy.invalid", "max_concurrent"),
        ({}, "policy.invalid", "policy"),
        ({"ttl_minutes": "an hour"}, "request.invalid", "ttl_minutes"),
    ],
)
def test_a_bad_policy_is_refused_with_its_field_and_changes_nothing(
    as_user: Callable[..., APIClient],
    settings: SettingsWrapper,
    audits: list[dict[str, Any]],
    body: dict[str, object],
    code: str,
    field: str,
) -> None:
    settings.PREVIEW_INACTIVITY_TIMEOUT, settings.PREVIEW_SESSION_TTL = 1800, 7200
    client = as_user(role="service_role")
    for path in ("/api/v1/policy/dry-run/", "/api/v1/policy/apply/"):
        response = client.post(path, body, format="json")
        assert (response.status_code, error_code(response)) == (400, code)
        assert field in response.json()["error"]["details"]["fields"]
    assert not SessionPolicy.objects.exists() and audits == []


# --- applying ---------------------------------------------------------------------------------------------


def test_applying_changes_the_live_rules_with_one_audit_record(
    as_user: Callable[..., APIClient], settings: SettingsWrapper, audits: list[dict[str, Any]]
) -> None:
    settings.PREVIEW_INACTIVITY_TIMEOUT, settings.PREVIEW_SESSION_TTL = 1800, 7200
    client = as_user(role="service_role")
    before = client.get("/api/v1/policy/").json()
    response = client.post("/api/v1/policy/apply/", {"idle_timeout_minutes": 15, "max_concurrent": 1}, format="json")

    assert before == {"idle_timeout_minutes": 30, "ttl_minutes": 120, "max_concurrent": 2}
    assert response.json() == {"before": before, "after": {**before, "idle_timeout_minutes": 15, "max_concurrent": 1}}
    assert client.get("/api/v1/policy/").json() == response.json()["after"]
    default = Quota.objects.get(user_id=None)
    assert (default.max_concurrent_sessions, default.max_session_seconds) == (1, 7200)  # the TTL left as it was
    [record] = audits
    assert (record["action"], record["before"], record["after"]) == ("policy.apply", before, response.json()["after"])
    assert record["actor_label"].startswith("service_role")


def test_the_idle_reaper_uses_the_applied_timeout(as_user: Callable[..., APIClient]) -> None:
    quiet = session(uuid.uuid4(), timezone.now() - timedelta(minutes=40), None)
    PreviewSession.objects.filter(id=quiet.id).update(last_activity_at=timezone.now() - timedelta(minutes=20))
    assert tasks.reap_idle_sessions() == "ended 0 idle session(s)"  # 20 minutes quiet, under the 30 of the setting

    as_user(role="service_role").post("/api/v1/policy/apply/", {"idle_timeout_minutes": 15}, format="json")
    assert tasks.reap_idle_sessions() == "ended 1 idle session(s)"
    quiet.refresh_from_db()
    assert (quiet.status, quiet.end_reason) == (SessionStatus.ENDED, "idle")


def test_a_setting_lowered_after_a_policy_was_applied_still_caps_the_idle_timeout(settings: SettingsWrapper) -> None:
    SessionPolicy.objects.create(idle_timeout_seconds=20 * 60)
    settings.PREVIEW_INACTIVITY_TIMEOUT = 30 * 60
    assert idle_timeout_seconds() == 20 * 60
    settings.PREVIEW_INACTIVITY_TIMEOUT = 10 * 60  # the agent exits after 10 minutes now: the reaper cannot wait 20
    assert idle_timeout_seconds() == 10 * 60
