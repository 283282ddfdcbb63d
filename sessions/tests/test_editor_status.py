"""The editor follows its session from the create on: it joins its own `user:{sub}` channel with a
`postgres_changes` binding first, then creates the session through the API, and sees every change of the
row (creating → active → ended). Through the real ASGI application, without Redis (the embedded default).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from machines.services import machine_prepare
from realtime_bridge.testing import Socket
from sessions.models import PreviewSession
from sessions.services import session_activate
from velocity.auth import issue_token

pytestmark = pytest.mark.django_db(transaction=True)


def own_sessions(project_id: str) -> dict[str, Any]:
    """The documented binding: the caller's `preview_sessions` rows of one project."""
    binding = {"event": "*", "schema": "public", "table": "preview_sessions", "filter": f"project_id=eq.{project_id}"}
    return {"private": True, "postgres_changes": [binding]}


async def join_user_channel(connect: Any, token: str, user: uuid.UUID, project_id: str) -> Socket:
    socket = await connect(token)
    reply = await socket.join(f"user:{user}", own_sessions(project_id))
    assert reply["payload"]["status"] == "ok", reply
    assert (await socket.receive_event("system"))["payload"]["message"] == "Subscribed to PostgreSQL"
    return socket


def api_as(token: str) -> tuple[AsyncClient, dict[str, str]]:
    return AsyncClient(), {"authorization": f"Bearer {token}"}


async def next_row(socket: Socket) -> dict[str, Any]:
    return (await socket.receive_event("postgres_changes"))["payload"]["data"]["record"]


@database_sync_to_async
def agent_ready(session_id: str) -> None:
    """What the agent's `ready` report does (`session_activate`), on a machine prepared for the session."""
    session = PreviewSession.objects.get(id=session_id)
    machine, _ = machine_prepare(session=session, memory_mb=512)
    PreviewSession.objects.filter(id=session.id).update(machine=machine)
    session_activate(session=session, preview_url="http://127.0.0.1:9/", boot_timings={}, now=timezone.now())


async def test_an_editor_joined_before_the_create_sees_creating_active_and_ended(connect):
    user = uuid.uuid4()
    token = issue_token(sub=user)
    socket = await join_user_channel(connect, token, user, "followed")
    api, auth = api_as(token)
    created = await api.post("/api/v1/sessions/", {"project_id": "followed"}, "application/json", headers=auth)
    assert created.status_code == 201
    first = await next_row(socket)
    assert (first["id"], first["status"]) == (created.json()["id"], "creating")
    await agent_ready(first["id"])
    active = await next_row(socket)
    assert (active["status"], active["preview_url"]) == ("active", "http://127.0.0.1:9/")
    assert (await api.delete(f"/api/v1/sessions/{first['id']}/", headers=auth)).status_code == 200
    assert (await next_row(socket))["status"] == "ended"


async def test_only_the_user_may_join_their_channel_and_only_privately(connect):
    user = uuid.uuid4()
    machine_key = issue_token(sub=uuid.uuid4(), audience="velocity_agent", extra={"velocity_project": "p"})
    for token, config in [
        (issue_token(sub=uuid.uuid4()), {"private": True}),  # another user
        (machine_key, {"private": True}),  # a preview agent's key
        (issue_token(sub=user), {}),  # the user, but a public join
    ]:
        socket = await connect(token)
        assert (await socket.join(f"user:{user}", config))["payload"]["status"] == "error"


async def test_another_users_rows_never_reach_the_channel(connect):
    user, other = uuid.uuid4(), uuid.uuid4()
    socket = await join_user_channel(connect, issue_token(sub=user), user, "shared-name")
    api, auth = api_as(issue_token(sub=other))
    created = await api.post("/api/v1/sessions/", {"project_id": "shared-name"}, "application/json", headers=auth)
    assert created.status_code == 201
    assert await socket.communicator.receive_nothing(0.3)
