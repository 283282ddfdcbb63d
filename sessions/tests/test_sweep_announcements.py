"""What an expiry sweep announces, now that its announcements go out together (``publish.batched``): each
ended session within the fan-out limit reaches its editor (`session:status` on the project's channel), its
owner's `postgres_changes` (and nobody else's). The operator stream: dashboard/tests/test_sweep_ops_stream.py;
the webhooks: webhooks/tests/test_sweep_webhooks.py. Through the real ASGI
application; on SQLite without Redis (the embedded default) and on PostgreSQL with Redis alike.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from functools import partial
from typing import Any
from unittest import mock

import pytest
from realtime import AsyncRealtimeClient, RealtimePostgresChangesListenEvent, RealtimeSubscribeStates

from realtime_bridge.testing import RealtimeServer, Socket, service_token
from realtime_bridge.tests.clients import Inbox, private, subscribe
from sessions.models import PreviewSession
from sessions.services import sweeps
from sessions.testing import expired_session, expiry_sweep
from velocity.auth import issue_token
from velocity.testing import require

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = {"private": True, "postgres_changes": [{"event": "UPDATE", "schema": "public", "table": "preview_sessions"}]}


async def joined(connect: Any, token: str, topic: str, config: dict[str, Any]) -> Socket:
    socket = await connect(token)
    reply = await socket.join(topic, config)
    assert reply["payload"]["status"] == "ok", reply
    return socket


async def rows_seen(socket: Socket, count: int) -> list[dict[str, Any]]:
    return [(await socket.receive_event("postgres_changes", timeout=5))["payload"]["data"] for _ in range(count)]


async def test_each_ended_session_reaches_its_editor_and_only_its_owners_rows(connect: Any) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    tag = uuid.uuid4().hex[:8]
    mine = [await expired_session(owner, f"sweep-{tag}-{n}") for n in range(3)]
    theirs = await expired_session(other, f"sweep-{tag}-other")
    service = issue_token(sub=None, role="service_role")
    editors = [await joined(connect, service, f"project:{s.project_id}", {"private": True}) for s in mine]
    owner_socket = await joined(connect, issue_token(sub=owner), f"user:{owner}", ROWS)
    other_socket = await joined(connect, issue_token(sub=other), f"user:{other}", ROWS)

    assert await expiry_sweep() == 4

    for editor, session in zip(editors, mine, strict=True):
        status = (await editor.receive_event("broadcast", timeout=5))["payload"]
        assert (status["event"], status["payload"]["session_id"]) == ("session:status", str(session.id))
        assert status["payload"]["status"] == "ended"
    rows = await rows_seen(owner_socket, 3)
    assert {r["record"]["id"] for r in rows} == {str(s.id) for s in mine}
    assert {(r["type"], r["record"]["status"], r["record"]["end_reason"]) for r in rows} == {
        ("UPDATE", "ended", "expired")
    }
    assert (await rows_seen(other_socket, 1))[0]["record"]["id"] == str(theirs.id)
    assert await owner_socket.communicator.receive_nothing(0.3)


async def test_the_status_fan_out_stops_at_its_limit(connect: Any) -> None:
    user, tag = uuid.uuid4(), uuid.uuid4().hex[:8]
    for n in range(3):
        await expired_session(user, f"limit-{tag}-{n}")
    socket = await joined(connect, issue_token(sub=user), f"user:{user}", ROWS)
    with mock.patch.object(sweeps, "STATUS_FANOUT_LIMIT", 2):
        assert await expiry_sweep() == 3
    assert len(await rows_seen(socket, 2)) == 2
    assert await socket.communicator.receive_nothing(0.3)


def broadcast_of(session: PreviewSession, message: dict[str, Any]) -> bool:
    return bool(message["payload"]["session_id"] == str(session.id))


def row_of(session: PreviewSession, change: dict[str, Any]) -> bool:
    return bool(change["data"]["record"]["id"] == str(session.id))


@pytest.mark.slow
async def test_a_server_in_another_process_delivers_them_through_redis(realtime_server: RealtimeServer) -> None:
    """The sweep's process skips the groups nobody follows: those the server's sockets follow still get theirs."""
    require(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"), "another process hears through Redis")
    owner, other, tag = uuid.uuid4(), uuid.uuid4(), uuid.uuid4().hex[:8]
    mine = [await expired_session(owner, f"remote-{tag}-{n}") for n in range(2)]
    theirs = await expired_session(other, f"remote-{tag}-other")
    rows, statuses = Inbox(), Inbox()
    owner_client = AsyncRealtimeClient(realtime_server.http_base, token=issue_token(sub=owner), auto_reconnect=False)
    editor = AsyncRealtimeClient(realtime_server.http_base, token=service_token(), auto_reconnect=False)
    await owner_client.connect()
    await editor.connect()
    try:
        channel = owner_client.channel(f"user:{owner}", private()).on_postgres_changes(
            RealtimePostgresChangesListenEvent.Update, rows.add, table="preview_sessions"
        )
        assert (await subscribe(channel))[0] == RealtimeSubscribeStates.SUBSCRIBED
        for session in mine:
            project = editor.channel(f"project:{session.project_id}", private()).on_broadcast(
                "session:status", statuses.add
            )
            assert (await subscribe(project))[0] == RealtimeSubscribeStates.SUBSCRIBED
        assert await expiry_sweep() == 3
        for session in mine:
            status = await statuses.wait_for(partial(broadcast_of, session))
            assert status["payload"]["status"] == "ended"
            row = await rows.wait_for(partial(row_of, session))
            assert row["data"]["record"]["end_reason"] == "expired"
        await asyncio.sleep(0.3)
    finally:
        await owner_client.close()
        await editor.close()
    assert [c for c in rows.items if c["data"]["record"]["id"] == str(theirs.id)] == []
