"""The official clients (Python `realtime` 2.34.1, realtime-js 2.119.1) against a real daphne process.

What Supabase does too is pinned in `conformance/` (runnable against a hosted project); this file keeps what is
the orchestrator's own: project topics and their refusals, two server processes, frame sizes, raw heartbeats.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from realtime import (
    AsyncRealtimeClient,
)

from realtime_bridge.testing import RealtimeServer, service_token
from realtime_bridge.tests.clients import Inbox, JsClient, private, subscribe
from velocity.auth import issue_token
from velocity.testing import require

pytestmark = pytest.mark.slow


@pytest.fixture
def project() -> str:
    return f"project:{uuid.uuid4()}"


@pytest.fixture
async def py_client(realtime_server: RealtimeServer, project: str) -> AsyncIterator[AsyncRealtimeClient]:
    client = AsyncRealtimeClient(realtime_server.http_base, token=service_token(), auto_reconnect=False)
    await client.connect()
    yield client
    await client.close()


@pytest.fixture
async def js_client(realtime_server: RealtimeServer, project: str) -> AsyncIterator[JsClient]:
    client = await JsClient.start(realtime_server.http_base, service_token())
    yield client
    await client.close()


async def test_a_project_is_refused_to_a_stranger_and_a_public_join_to_anyone(realtime_server, project):
    service = await JsClient.start(realtime_server.http_base, service_token())
    try:
        public = await service.join(project, config={"private": False})
        assert public["status"] == "CHANNEL_ERROR"
        assert "This project only allows private channels" in public["error"]
    finally:
        await service.close()
    client = await JsClient.start(realtime_server.http_base, issue_token(sub=uuid.uuid4()))
    try:
        status = await client.join(project)
        assert status["status"] == "CHANNEL_ERROR"
        assert "Unauthorized" in status["error"]
    finally:
        await client.close()


async def test_forged_and_expired_tokens_are_refused(realtime_server, project):
    forged = service_token()[:-4] + "AAAA"
    python = AsyncRealtimeClient(realtime_server.http_base, token=forged, auto_reconnect=False)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await python.connect()
    assert refused.value.response.status_code == 401

    expired = issue_token(sub=None, role="service_role", ttl=-60)
    client = await JsClient.start(realtime_server.http_base, service_token())
    try:
        await client.call("set_auth", token=expired)
        status = await client.join(project)
        assert status["status"] == "CHANNEL_ERROR"
        assert "expired" in status["error"]
    finally:
        await client.close()


async def raw_exchange(url: str, frame: str) -> Any:
    async with websockets.connect(url) as socket:
        await socket.send(frame)
        return json.loads(await asyncio.wait_for(socket.recv(), 5))


async def test_heartbeats_are_answered_in_both_versions_even_with_a_null_ref(realtime_server, project):
    ws_base = realtime_server.http_base.replace("http", "ws") + f"/websocket?apikey={service_token()}"
    v1 = await raw_exchange(ws_base + "&vsn=1.0.0", '{"topic":"phoenix","event":"heartbeat","payload":{},"ref":null}')
    assert v1 == {"topic": "phoenix", "event": "phx_reply", "payload": {"status": "ok", "response": {}}, "ref": None}
    v2 = await raw_exchange(ws_base + "&vsn=2.0.0", '[null,"12","phoenix","heartbeat",{}]')
    assert v2 == [None, "12", "phoenix", "phx_reply", {"status": "ok", "response": {}}]


@pytest.fixture
def needs_redis() -> None:
    require(os.environ.get("REDIS_URL"), "two processes share broadcasts and presence through Redis")


@pytest.fixture(scope="module")
def second_server(realtime_server: RealtimeServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = RealtimeServer(tmp_path_factory.mktemp("rt2")).start()
    yield server
    server.stop()


@pytest.mark.usefixtures("needs_redis")
async def test_two_server_processes_deliver_across_each_other_through_redis(realtime_server, second_server, project):
    token = service_token()
    python = AsyncRealtimeClient(second_server.http_base, token=token, auto_reconnect=False)
    js = await JsClient.start(realtime_server.http_base, token)
    try:
        inbox = Inbox()
        options: Any = {"config": {"presence": {"key": "py"}}}
        channel = python.channel(project, private(options)).on_broadcast("*", inbox.add)
        await subscribe(channel)
        await js.join(project, presence=True)
        assert await js.call("send", topic=project, event="file:update", payload={"path": "x"}) == "ok"
        assert (await inbox.wait_for(lambda m: True))["payload"] == {"path": "x"}
        await channel.send_broadcast("file:synced", {"path": "x"})
        assert (await js.expect(lambda e: e["type"] == "broadcast"))["event"] == "file:synced"
        await channel.track({"at": "b"})
        synced = await js.expect(lambda e: e["type"] == "presence" and "py" in e["state"])
        assert synced["state"]["py"][0]["at"] == "b"
    finally:
        await python.close()
        await js.close()


@pytest.mark.usefixtures("needs_redis")
async def test_a_late_joiner_on_another_process_learns_the_existing_presences(realtime_server, second_server, project):
    js = await JsClient.start(realtime_server.http_base, service_token())
    python = AsyncRealtimeClient(second_server.http_base, token=service_token(), auto_reconnect=False)
    try:
        await js.join(project, config={"presence": {"key": "early"}}, presence=True)
        await js.call("track", topic=project, payload={"since": 1})
        joins = Inbox()
        channel = python.channel(project, private()).on_presence_join(lambda key, current, new: joins.add(key))
        await subscribe(channel)
        assert await joins.wait_for(lambda key: key == "early") == "early"
    finally:
        await python.close()
        await js.close()


async def test_a_broadcast_larger_than_daphnes_default_1_mb_frame_is_delivered(realtime_server):
    url = realtime_server.http_base.replace("http", "ws") + f"/websocket?apikey={service_token()}&vsn=1.0.0"
    join = {"topic": "realtime:big", "event": "phx_join", "payload": {"config": {}}, "ref": "1", "join_ref": "1"}
    async with websockets.connect(url, max_size=None) as sender, websockets.connect(url, max_size=None) as receiver:
        for socket in (sender, receiver):
            await socket.send(json.dumps(join))
            await socket.recv()
        payload = {"type": "broadcast", "event": "file:update", "payload": {"content": "x" * 1_200_000}}
        await sender.send(json.dumps({"topic": "realtime:big", "event": "broadcast", "payload": payload, "ref": "2"}))
        frame = json.loads(await asyncio.wait_for(receiver.recv(), 5))
    assert len(frame["payload"]["payload"]["content"]) == 1_200_000
