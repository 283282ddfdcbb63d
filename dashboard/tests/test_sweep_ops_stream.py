"""An expiry sweep's ended sessions on the operator stream (`/ws/ops/`): its events arrive as one layer message
(``ops.events``) and leave the socket as one frame each."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from dashboard.routing import ops_application
from sessions.testing import expired_session, expiry_sweep
from velocity.testing import alogin_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def ops_socket() -> AsyncIterator[WebsocketCommunicator]:
    cookie = await alogin_cookie(is_staff=True)
    communicator = WebsocketCommunicator(ops_application, "/ws/ops/", headers=[(b"cookie", cookie)])
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
    yield communicator
    await communicator.disconnect()


async def test_the_operator_stream_gets_one_event_per_ended_session(ops_socket: WebsocketCommunicator) -> None:
    user, tag = uuid.uuid4(), uuid.uuid4().hex[:8]
    sessions = [await expired_session(user, f"ops-{tag}-{n}") for n in range(3)]
    assert await expiry_sweep() == 3
    seen: list[dict[str, Any]] = []
    while len([e for e in seen if e["kind"] == "session.status"]) < 3:
        seen.append(await ops_socket.receive_json_from(timeout=5))
    statuses = [e["data"] for e in seen if e["kind"] == "session.status"]
    assert {(s["session_id"], s["status"], s["end_reason"]) for s in statuses} == {
        (str(s.id), "ended", "expired") for s in sessions
    }
