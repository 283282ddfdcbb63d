"""Operator streams `/ws/ops/` and `/ws/ops/sessions/<id>/` through their real websocket application (the
shell adds only the Origin check, tested in velocity/tests/test_ops_origin.py), beside the realtime endpoint's."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from dashboard.routing import ops_application
from realtime_bridge.routing import realtime_application
from sessions.services import session_end
from sessions.testing import live_session
from velocity.auth import issue_token
from velocity.testing import alogin_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def open_ws() -> AsyncIterator[Callable[..., Any]]:
    communicators: list[WebsocketCommunicator] = []

    async def open_socket(path: str, cookie: bytes | None = None) -> WebsocketCommunicator | None:
        headers = [(b"cookie", cookie)] if cookie else []
        application = realtime_application if path.startswith("/realtime/") else ops_application
        communicator = WebsocketCommunicator(application, path, headers=headers)
        communicators.append(communicator)
        connected, _ = await communicator.connect()
        return communicator if connected else None

    yield open_socket
    for communicator in communicators:
        await communicator.disconnect()


async def editor_broadcast(open_ws: Callable[..., Any], user_id: uuid.UUID, project_id: str, event: dict) -> None:
    editor = await open_ws(f"/realtime/v1/websocket?apikey={issue_token(sub=user_id)}&vsn=1.0.0")
    topic = f"realtime:project:{project_id}"
    join = {"topic": topic, "event": "phx_join", "payload": {"config": {"private": True}}, "ref": "1", "join_ref": "1"}
    await editor.send_to(text_data=json.dumps(join))
    assert json.loads(await editor.receive_from())["payload"]["status"] == "ok"
    push = {"topic": topic, "event": "broadcast", "payload": event, "ref": "2", "join_ref": "1"}
    await editor.send_to(text_data=json.dumps(push))


async def receive_event(ops: WebsocketCommunicator, kind: str) -> dict[str, Any]:
    while True:
        message = await ops.receive_json_from(timeout=2)
        if message.get("kind") == kind:
            return message


FILE_UPDATE = {
    "type": "broadcast",
    "event": "file:update",
    "payload": {"path": "src/App.tsx", "content": "héllo", "encoding": "utf-8", "version": 3, "sent_at": 0},
}


async def test_a_staff_websocket_sees_a_file_update_an_editor_broadcasts(open_ws):
    owner = uuid.uuid4()
    session = await database_sync_to_async(live_session)(user_id=owner, project="proj-ops")
    ops = await open_ws("/ws/ops/", await alogin_cookie(is_staff=True))
    snapshot = await ops.receive_json_from()
    assert snapshot["type"] == "snapshot"
    assert str(session.id) in [s["id"] for s in snapshot["sessions"]]

    await editor_broadcast(open_ws, owner, "proj-ops", FILE_UPDATE)
    event = await receive_event(ops, "realtime.message")
    assert event["project_id"] == "proj-ops"
    assert (event["data"]["event"], event["data"]["path"], event["data"]["size"]) == ("file:update", "src/App.tsx", 6)
    assert "content" not in event["data"]


async def test_the_session_stream_sees_its_project_traffic_and_status_changes(open_ws):
    owner = uuid.uuid4()
    session = await database_sync_to_async(live_session)(user_id=owner, project="proj-one")
    ops = await open_ws(f"/ws/ops/sessions/{session.id}/", await alogin_cookie(is_staff=True))
    assert (await ops.receive_json_from())["session"]["project_id"] == "proj-one"
    await editor_broadcast(open_ws, owner, "proj-one", FILE_UPDATE)
    assert (await receive_event(ops, "realtime.message"))["data"]["version"] == "3"

    await database_sync_to_async(session_end)(session=session, reason="failed", now=timezone.now())
    assert (await receive_event(ops, "session.status"))["data"]["status"] == "failed"


async def test_operator_streams_refuse_non_staff_and_anonymous_users(open_ws):
    assert await open_ws("/ws/ops/") is None
    assert await open_ws("/ws/ops/", await alogin_cookie(is_staff=False)) is None
    assert await open_ws(f"/ws/ops/sessions/{uuid.uuid4()}/", await alogin_cookie(is_staff=True)) is None
