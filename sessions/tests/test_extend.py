"""POST /api/v1/sessions/{id}/extend/: the owner's "keep my preview", capped by the quota's session length."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils.dateparse import parse_datetime

from realtime_bridge.events import session_group
from sessions.models import EndReason, PreviewSession, Quota
from sessions.services import session_end
from sessions.tests.conftest import error_code

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def new_session(as_user: Any, user: uuid.UUID, *, max_hours: int = 4) -> str:
    Quota.objects.create(user_id=user, max_session_seconds=max_hours * 3600)
    return str(as_user(user).post("/api/v1/sessions/", {"project_id": "p"}, format="json").json()["id"])


def extend(as_user: Any, user: uuid.UUID, session_id: str, body: Any) -> Any:
    return as_user(user).post(f"/api/v1/sessions/{session_id}/extend/", body, format="json")


def expires_at(session_id: str) -> datetime | None:
    return PreviewSession.objects.get(id=session_id).expires_at


def test_the_owner_pushes_expires_at_out_and_it_is_announced_and_audited(
    as_user: Any, audits: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    user = uuid.uuid4()
    with time_machine.travel(T0, tick=False):
        session_id = new_session(as_user, user)
        layer = get_channel_layer()
        channel = async_to_sync(layer.new_channel)()
        async_to_sync(layer.group_add)(session_group(session_id), channel)
        with django_capture_on_commit_callbacks(execute=True):
            response = extend(as_user, user, session_id, {"minutes": 30})
        announced = async_to_sync(asyncio.wait_for)(layer.receive(channel), 10)
    assert response.status_code == 200
    assert parse_datetime(response.json()["expires_at"]) == T0 + 2 * HOUR + timedelta(minutes=30)
    assert expires_at(session_id) == T0 + 2 * HOUR + timedelta(minutes=30)
    assert announced["event"]["kind"] == "session.status"
    record = next(a for a in audits if a["action"] == "session.extend")
    assert (record["actor_label"], record["target_id"], record["after"]["minutes"]) == (f"user:{user}", session_id, 30)


def test_past_the_quotas_session_length_it_is_refused_with_the_latest_allowed(as_user: Any) -> None:
    user = uuid.uuid4()
    with time_machine.travel(T0, tick=False):
        session_id = new_session(as_user, user, max_hours=3)
        within = extend(as_user, user, session_id, {"minutes": 60})
        past = extend(as_user, user, session_id, {"minutes": 1})
    assert within.status_code == 200
    assert past.status_code == 409 and error_code(past) == "quota.session_length"
    details = past.json()["error"]["details"]
    assert parse_datetime(details["max_expires_at"]) == T0 + 3 * HOUR
    assert details["limit_seconds"] == 3 * 3600
    assert expires_at(session_id) == T0 + 3 * HOUR


def test_a_session_already_past_its_expiry_is_extended_from_now(as_user: Any) -> None:
    user = uuid.uuid4()
    with time_machine.travel(T0, tick=False) as clock:
        session_id = new_session(as_user, user)
        clock.move_to(T0 + 2 * HOUR + timedelta(minutes=10))  # the expiry sweep has not run yet
        response = extend(as_user, user, session_id, {"minutes": 15})
    assert response.status_code == 200
    assert expires_at(session_id) == T0 + 2 * HOUR + timedelta(minutes=25)


def test_an_ended_session_cannot_be_extended(as_user: Any) -> None:
    user = uuid.uuid4()
    session_id = new_session(as_user, user)
    session_end(session=PreviewSession.objects.get(id=session_id), reason=EndReason.USER, now=datetime.now(UTC))
    before = expires_at(session_id)
    response = extend(as_user, user, session_id, {"minutes": 5})
    assert response.status_code == 409 and error_code(response) == "session.ended"
    assert expires_at(session_id) == before


@pytest.mark.parametrize(
    "body",
    [{}, {"minutes": 0}, {"minutes": -5}, {"minutes": "soon"}, {"minutes": 1.5}, {"minutes": 100_000}, [30]],
)
def test_bad_input_is_a_400_and_changes_nothing(as_user: Any, body: Any) -> None:
    user = uuid.uuid4()
    session_id = new_session(as_user, user)
    before = expires_at(session_id)
    response = extend(as_user, user, session_id, body)
    assert response.status_code == 400 and error_code(response) == "request.invalid"
    assert expires_at(session_id) == before


def test_a_stranger_gets_404_and_the_session_keeps_its_expiry(as_user: Any, audits: list[dict[str, Any]]) -> None:
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    session_id = new_session(as_user, owner)
    before = expires_at(session_id)
    response = extend(as_user, stranger, session_id, {"minutes": 30})
    unknown = extend(as_user, stranger, str(uuid.uuid4()), {"minutes": 30})
    assert response.status_code == 404 and error_code(response) == "not_found"
    assert response.json() == unknown.json()
    assert expires_at(session_id) == before
    assert not [a for a in audits if a["action"] == "session.extend"]


def test_the_service_role_may_extend_any_session_and_is_named_in_the_audit(
    as_user: Any, audits: list[dict[str, Any]]
) -> None:
    owner = uuid.uuid4()
    session_id = new_session(as_user, owner)
    response = as_user(role="service_role").post(
        f"/api/v1/sessions/{session_id}/extend/", {"minutes": 10}, format="json"
    )
    assert response.status_code == 200
    assert next(a for a in audits if a["action"] == "session.extend")["actor_label"].startswith("service_role")


def test_a_session_is_never_extended_past_its_agents_realtime_key(as_user: Any) -> None:
    """The machine's realtime key lives PREVIEW_SESSION_TTL + 1 h from its issue (after the session's creation):
    a longer quota still stops there, or the agent would lose its channel mid-session."""
    user = uuid.uuid4()
    with time_machine.travel(T0, tick=False):
        session_id = new_session(as_user, user, max_hours=24)  # TTL 2 h: the key lives 3 h
        within = extend(as_user, user, session_id, {"minutes": 60})
        past = extend(as_user, user, session_id, {"minutes": 1})
    assert within.status_code == 200
    assert past.status_code == 409 and error_code(past) == "quota.session_length"
    assert parse_datetime(past.json()["error"]["details"]["max_expires_at"]) == T0 + 3 * HOUR
