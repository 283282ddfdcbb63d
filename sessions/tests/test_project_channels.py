"""Project access at the realtime doors, with the credentials the orchestrator really issues.

Every socket goes through the real ASGI application; rows are committed (`transaction=True`) because the
endpoint reads them from its own worker thread. Agent keys come from `machine_prepare`, exactly as a machine
gets its `REALTIME_KEY`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient
from django.utils import timezone
from rest_framework.test import APIClient

from machines.models import Machine, MachineState
from machines.services import machine_prepare, machine_transition
from realtime_bridge.testing import Socket, service_token
from sessions.models import PreviewSession, Project, ProjectMember
from sessions.projects import project_member_remove
from sessions.services import session_create, session_end, sessions_delete_finished
from velocity.auth import issue_token, user_claims

pytestmark = pytest.mark.django_db(transaction=True)

PRIVATE = {"private": True}
ALL_SESSION_ROWS = {"event": "*", "schema": "public", "table": "preview_sessions"}


@database_sync_to_async
def make_project(project_id: str, owner: uuid.UUID, members: dict[uuid.UUID, str] | None = None) -> Project:
    project = Project.objects.create(project_id=project_id, owner_id=owner)
    for user, role in (members or {}).items():
        ProjectMember.objects.create(project=project, user_id=user, role=role)
    return project


@database_sync_to_async
def machine_key(project_id: str) -> tuple[Machine, str]:
    """A machine for a live session of the project, and the realtime key its agent is started with."""
    session = PreviewSession.objects.create(user_id=uuid.uuid4(), project_id=project_id)
    machine, spec = machine_prepare(session=session, memory_mb=512)
    PreviewSession.objects.filter(id=session.id).update(machine=machine)
    return machine, spec.env["REALTIME_KEY"]


@database_sync_to_async
def destroy(machine: Machine) -> None:
    machine_transition(machine=machine, to_state=MachineState.DESTROYED, source="api")


@database_sync_to_async
def remove_member(project: Project, user: uuid.UUID) -> None:
    project_member_remove(project=project, user_id=user, actor="service_role", now=timezone.now())


def user_token(user: uuid.UUID) -> str:
    return issue_token(sub=user)


async def joined(connect: Any, token: str, topic: str, **config: Any) -> Socket:
    socket = await connect(token)
    reply = await socket.join(topic, {**PRIVATE, **config})
    assert reply["payload"]["status"] == "ok", reply
    return socket


async def join_status(connect: Any, token: str, topic: str) -> dict[str, Any]:
    socket = await connect(token)
    return (await socket.join(topic, PRIVATE))["payload"]


async def expect_lost(socket: Socket, topic: str, text: str = "You no longer have permission") -> None:
    """The channel ends with a system error: ``You no longer have permission`` when access changed, Realtime's
    join refusal ``You do not have permissions`` when a refreshed token may not read."""
    system = await socket.receive_event("system", timeout=1)
    text = f"{text} to read from this Channel topic: {topic}"
    assert (system["payload"]["status"], system["payload"]["message"]) == ("error", text)
    assert (await socket.receive(timeout=1))["event"] == "phx_close"


async def send(socket: Socket, topic: str, event: str, payload: dict[str, Any]) -> None:
    body = {"type": "broadcast", "event": event, "payload": payload}
    await socket.push(f"realtime:{topic}", "broadcast", body, join_ref="1")


async def test_owner_editor_and_viewer_join_and_a_stranger_learns_nothing(connect):
    owner, editor, viewer, stranger = (uuid.uuid4() for _ in range(4))
    await make_project("team", owner, {editor: "editor", viewer: "viewer"})
    for user in (owner, editor, viewer):
        await joined(connect, user_token(user), "project:team")
    foreign = await join_status(connect, user_token(stranger), "project:team")
    unknown = await join_status(connect, user_token(stranger), "project:nobody-has-this")
    assert foreign["status"] == unknown["status"] == "error"
    assert foreign["response"]["reason"].replace("team", "X") == unknown["response"]["reason"].replace(
        "nobody-has-this", "X"
    )


async def test_a_viewer_hears_the_project_but_its_broadcasts_are_dropped(connect):
    owner, viewer = uuid.uuid4(), uuid.uuid4()
    await make_project("read-only", owner, {viewer: "viewer"})
    owner_socket = await joined(connect, user_token(owner), "project:read-only")
    viewer_socket = await joined(connect, user_token(viewer), "project:read-only", broadcast={"ack": True})
    await send(viewer_socket, "project:read-only", "file:update", {"path": "index.html", "content": "owned"})
    assert await owner_socket.communicator.receive_nothing(0.3)
    assert await viewer_socket.communicator.receive_nothing(0.1)  # no ack either, as Realtime does
    await send(owner_socket, "project:read-only", "file:update", {"path": "index.html", "content": "mine"})
    assert (await viewer_socket.receive_event("broadcast"))["payload"]["payload"]["content"] == "mine"


async def test_the_machine_key_serves_its_own_project_only_and_not_the_rest_api(connect):
    await make_project("alpha", uuid.uuid4())
    await make_project("beta", uuid.uuid4())
    _, key = await machine_key("alpha")
    await joined(connect, key, "project:alpha")
    refusal = await join_status(connect, key, "project:beta")
    assert refusal["response"]["reason"].startswith("Unauthorized")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = await database_sync_to_async(client.post)("/api/v1/sessions/", {"project_id": "x"}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "auth.bad_audience")


@database_sync_to_async
def warm_machine_env() -> tuple[Machine, Mapping[str, str]]:
    """A warm machine (no session yet) and the environment its agent is started with."""
    machine, spec = machine_prepare(session=None, memory_mb=512)
    return machine, spec.env


async def test_a_warm_machines_key_connects_but_joins_nothing_not_even_the_project_it_will_serve(connect):
    await make_project("later", uuid.uuid4())
    machine, env = await warm_machine_env()
    key = env["REALTIME_KEY"]
    assert "PROJECT_ID" not in env
    socket = await connect(key)  # the handshake accepts it: the warm agent is connected before any claim
    for topic in ("project:later", f"user:{machine.id}", "anything"):
        reply = await socket.join(topic, PRIVATE)
        assert reply["payload"]["status"] == "error", topic
    body = {"messages": [{"topic": "project:later", "event": "file:update", "payload": {}, "private": True}]}
    listener = await joined(connect, service_token(), "project:later")
    headers = {"authorization": f"Bearer {key}"}
    response = await AsyncClient().post("/realtime/v1/api/broadcast", body, "application/json", headers=headers)
    assert response.status_code == 202  # Realtime's answer to a refused message too
    assert await listener.communicator.receive_nothing(0.3)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    response = await database_sync_to_async(client.get)("/api/v1/sessions/")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "auth.bad_audience")


async def test_a_destroyed_machines_key_loses_its_channel_and_cannot_come_back(connect):
    await make_project("gone", uuid.uuid4())
    machine, key = await machine_key("gone")
    socket = await joined(connect, key, "project:gone")
    await destroy(machine)
    await expect_lost(socket, "project:gone")
    assert (await join_status(connect, key, "project:gone"))["status"] == "error"


async def test_a_removed_member_loses_the_channel_at_once(connect):
    owner, member = uuid.uuid4(), uuid.uuid4()
    project = await make_project("crew", owner, {member: "editor"})
    member_socket = await joined(connect, user_token(member), "project:crew")
    owner_socket = await joined(connect, user_token(owner), "project:crew")
    await remove_member(project, member)
    await expect_lost(member_socket, "project:crew")
    assert await owner_socket.communicator.receive_nothing(0.2)


async def test_a_token_refresh_to_one_without_access_ends_the_channel(connect):
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    await make_project("refresh", owner)
    socket = await joined(connect, user_token(owner), "project:refresh")
    await socket.push("realtime:project:refresh", "access_token", {"access_token": user_token(stranger)}, "1")
    await expect_lost(socket, "project:refresh", "You do not have permissions")


async def own_row_changes(socket: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` row changes of the test's own session: the service role sees every session's rows, and
    a session another test (or run) wrote just before may still be arriving."""
    seen: list[dict[str, Any]] = []
    session_id = None
    while len(seen) < count:
        change = (await socket.receive_event("postgres_changes"))["payload"]["data"]
        row = change.get("record") or change.get("old_record") or {}
        if session_id is None and change["type"] == "INSERT" and row.get("project_id") == "rows":
            session_id = row["id"]
        if session_id is not None and row.get("id") == session_id:
            seen.append(change)
    return seen


async def test_postgres_changes_show_each_viewer_only_what_the_seeds_rls_would(connect):
    owner, member, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await make_project("rows", owner, {member: "editor"})
    await make_project("elsewhere", stranger)
    await make_project("other-agent", uuid.uuid4())
    _, own_agent = await machine_key("rows")
    _, other_agent = await machine_key("other-agent")
    binding = {"postgres_changes": [ALL_SESSION_ROWS]}
    viewers = {
        "owner": await joined(connect, user_token(owner), "project:rows", **binding),
        "member": await joined(connect, user_token(member), "project:rows", **binding),
        "stranger": await joined(connect, user_token(stranger), "project:elsewhere", **binding),
        "agent": await joined(connect, own_agent, "project:rows", **binding),
        "other agent": await joined(connect, other_agent, "project:other-agent", **binding),
        "service role": await joined(connect, service_token(), "project:rows", **binding),
    }
    for socket in viewers.values():
        await socket.receive_event("system")  # "Subscribed to PostgreSQL"

    await life_of_a_session(owner, "rows")

    for name in ("owner", "service role"):
        seen = await own_row_changes(viewers[name], 3)
        assert [change["type"] for change in seen] == ["INSERT", "UPDATE", "DELETE"], name
        assert {str(c["record"]["user_id"]) for c in seen[:2]} == {str(owner)}
        assert seen[2]["old_record"] == {"id": seen[0]["record"]["id"]}  # the key only, as Supabase sends it
    for name in ("member", "stranger", "agent", "other agent"):
        assert await row_changes_within(viewers[name], 0.3) == [], name


@database_sync_to_async
def life_of_a_session(owner: uuid.UUID, project_id: str) -> None:
    """Created, ended and deleted through the services, as the API and the admin do it."""
    now = timezone.now()
    session, _ = session_create(claims=user_claims(owner), user_id=owner, project_id=project_id, memory_mb=512, now=now)
    session_end(session=session, reason="user", now=now)
    sessions_delete_finished(session_ids=[session.id])


async def row_changes_within(socket: Socket, seconds: float) -> list[dict[str, Any]]:
    """The `postgres_changes` frames a socket receives within ``seconds`` (other frames are skipped)."""
    frames = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                frames.append(await socket.receive(timeout=seconds))
    return [frame for frame in frames if frame["event"] == "postgres_changes"]


async def test_rest_broadcast_reaches_the_project_only_from_those_who_may_write(connect):
    owner, viewer, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await make_project("rest", owner, {viewer: "viewer"})
    listener = await joined(connect, user_token(owner), "project:rest")
    body = {"messages": [{"topic": "project:rest", "event": "file:update", "payload": {"p": 1}, "private": True}]}
    for intruder in (viewer, stranger):
        headers = {"authorization": f"Bearer {user_token(intruder)}"}
        response = await AsyncClient().post("/realtime/v1/api/broadcast", body, "application/json", headers=headers)
        assert response.status_code == 202
    assert await listener.communicator.receive_nothing(0.3)
    _, key = await machine_key("rest")
    headers = {"authorization": f"Bearer {key}"}
    await AsyncClient().post("/realtime/v1/api/broadcast", body, "application/json", headers=headers)
    assert (await listener.receive_event("broadcast"))["payload"]["payload"] == {"p": 1}
    await asyncio.sleep(0)
    assert json.dumps(body)  # the same message, refused twice and delivered once
