"""The hot reads' JSON (``sessions.session_json``) is ``SessionSerializer``'s, byte for byte, for a session
in every state, through the real list and detail endpoints as well as directly."""

from __future__ import annotations

import json
import uuid
import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer

from machines.services import machine_prepare
from sessions.models import EndReason, PreviewSession, SessionHealth, SessionStatus
from sessions.serializers import SessionSerializer
from sessions.session_json import (
    FIELDS,
    SessionRowsRenderer,
    page_rows,
    session_data,
    sessions_json,
)
from velocity.auth import issue_token

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _session(user: uuid.UUID, status: str, minutes: int, **extra: Any) -> PreviewSession:
    created = NOW - timedelta(minutes=minutes)
    return PreviewSession.objects.create(
        user_id=user, project_id=f"p-{status}-{minutes}", status=status, created_at=created, updated_at=created, **extra
    )


def every_state(user: uuid.UUID) -> list[PreviewSession]:
    """Creating (bare), active (a machine, a URL, every timestamp, a degraded health), ended, failed."""
    machine, _ = machine_prepare(session=None, memory_mb=1024)
    stamps = {f: NOW - timedelta(seconds=i) for i, f in enumerate(("queued_at", "machine_created_at"))}
    return [
        _session(user, SessionStatus.CREATING, 1, expires_at=NOW + timedelta(hours=2), queued_at=NOW),
        _session(
            user,
            SessionStatus.ACTIVE,
            2,
            machine=machine,
            preview_url="https://p-1.preview.example/",
            framework="vite",
            memory_mb=1024,
            started_at=NOW,
            expires_at=NOW + timedelta(hours=2),
            last_activity_at=NOW,
            last_activity_source="heartbeat",
            machine_started_at=NOW,
            agent_ready_at=NOW,
            boot_timings={"install": 1.25, "steps": [{"name": "dev", "ms": 300}], "note": "é ✓"},
            health=SessionHealth.DEGRADED,
            health_detail="agent slow: 12 s since the last heartbeat",
            **stamps,
        ),
        _session(user, SessionStatus.ENDED, 3, ended_at=NOW, end_reason=EndReason.USER, started_at=NOW),
        _session(
            user, SessionStatus.FAILED, 4, ended_at=NOW, end_reason=EndReason.FAILED, end_detail='boot failed: "npm"'
        ),
    ]


def rendered(data: Any) -> bytes:
    return JSONRenderer().render(data)


def test_every_state_renders_exactly_as_the_serializer_from_a_model_and_from_a_values_row() -> None:
    user = uuid.uuid4()
    for session in every_state(user):
        session.refresh_from_db()
        expected = rendered(SessionSerializer(session).data)
        row = PreviewSession.objects.filter(id=session.id).values(*FIELDS).get()
        assert tuple(row) == FIELDS  # sessions_json converts such rows in place, relying on this order
        assert rendered(sessions_json([dict(row)])[0]) == expected  # a copy: the row is converted in place
        assert rendered(sessions_json([row])) == b"[" + expected + b"]"
        assert SessionRowsRenderer().render(session_data(session)) == expected
        assert SessionRowsRenderer().render(page_rows([dict(row)])) == b"[" + expected + b"]"  # raw, in UTC


def test_a_time_zone_other_than_utc_is_honoured_as_drf_does() -> None:
    session = every_state(uuid.uuid4())[1]
    session.refresh_from_db()
    with timezone.override(zoneinfo.ZoneInfo("Europe/Paris")):
        expected = rendered(SessionSerializer(session).data)
        rows = PreviewSession.objects.filter(id=session.id).values(*FIELDS)
        assert rendered(sessions_json(rows)) == expected.join([b"[", b"]"])
    assert b"+01:00" in expected


def test_the_list_and_the_detail_endpoints_answer_the_serializers_json(client: Client) -> None:
    user = uuid.uuid4()
    sessions = every_state(user)
    headers = {"Authorization": f"Bearer {issue_token(sub=user, ttl=600)}"}
    listed = client.get("/api/v1/sessions/", headers=headers)
    assert listed.status_code == 200
    ordered = PreviewSession.objects.filter(user_id=user).order_by("-created_at", "-id")
    assert listed.json()["count"] == len(sessions)
    assert listed.json()["results"] == [SessionSerializer(s).data for s in ordered]
    for session in sessions:
        detail = client.get(f"/api/v1/sessions/{session.id}/", headers=headers)
        assert detail.content == rendered(SessionSerializer(PreviewSession.objects.get(id=session.id)).data)


def test_the_list_pages_and_filters_as_before(client: Client) -> None:
    user = uuid.uuid4()
    every_state(user)
    headers = {"Authorization": f"Bearer {issue_token(sub=user, ttl=600)}"}
    page = client.get("/api/v1/sessions/?limit=2&offset=1&status=active,ended,failed", headers=headers).json()
    assert page["count"] == 3
    assert [s["status"] for s in page["results"]] == ["ended", "failed"]
    assert page["next"] is None
    assert page["previous"].endswith("limit=2&status=active%2Cended%2Cfailed")


def test_the_renderer_writes_what_drfs_writes_for_any_serializer_data() -> None:
    data = {
        "text": 'é \u2028 \u2029 <>&"\\',
        "numbers": [0, -1, 2**53, 0.1 + 0.2, 0.0001, 0.003, 12.5, 123456789.123],
        "nested": {"none": None, "flags": [True, False], "empty": {}},
        "detail": ErrorDetail("refused", code="x"),
        "lazy": gettext_lazy("Not found."),
        "amount": Decimal("1.50"),
    }
    assert SessionRowsRenderer().render(data) == rendered(data)
    assert SessionRowsRenderer().render(None) == rendered(None)
    # The one difference: an exponent is written without padding (1e-7, where Python writes 1e-07).
    assert json.loads(SessionRowsRenderer().render([1e-7, 1e22])) == [1e-7, 1e22]


def test_in_another_time_zone_the_rows_are_converted_before_rendering() -> None:
    session = every_state(uuid.uuid4())[1]
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    with timezone.override(paris):
        expected = rendered(SessionSerializer(PreviewSession.objects.get(id=session.id)).data)
        rows = list(PreviewSession.objects.filter(id=session.id).values(*FIELDS))
        assert SessionRowsRenderer().render(page_rows(rows)) == b"[" + expected + b"]"
