"""The official clients (Python `realtime` 2.34.1, realtime-js 2.119.1) against a real daphne process."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets
from realtime import (
    AsyncRealtimeChannel,
    AsyncRealtimeClient,
    RealtimeSubscribeStates,
)

from realtime_bridge.testing import RealtimeServer, service_token
from realtime_bridge.tests.clients import JsClient
from velocity.auth import issue_token
from velocity.testing import async_wait_until, require

pytestmark = pytest.mark.slow


class Inbox:
    """Collects Python client callbacks and waits for them."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        self.items.append(item)

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 10) -> Any:
        item = await async_wait_until(lambda: next((i for i in self.items if predicate(i)), None), timeout=timeout)
        self.items.remove(item)
        return item


def private(options: Any | None = None) -> Any:
    """Channel options for a project topic: project channels are private only, as the agent joins them."""
    options = options or {}
    return {**options, "config": {**options.get("config", {}), "private": True}}


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


async def subscribe(channel: AsyncRealtimeChannel) -> tuple[RealtimeSubscribeStates, Exception | None]:
    states: list[tuple[RealtimeSubscribeStates, Exception | None]] = []
    await channel.subscribe(lambda state, error: states.append((state, error)))
    return states[0]


async def test_python_and_js_exchange_broadcasts_both_ways(py_client, js_client, project):
    inbox = Inbox()
    channel = py_client.channel(project, private()).on_broadcast("*", inbox.add)
    assert (await subscribe(channel))[0] == RealtimeSubscribeStates.SUBSCRIBED
    assert (await js_client.join(project))["status"] == "SUBSCRIBED"

    await channel.send_broadcast("file:update", {"path": "a.ts", "version": 1})
    received = await js_client.expect(lambda e: e["type"] == "broadcast")
    assert (received["event"], received["payload"]) == ("file:update", {"path": "a.ts", "version": 1})

    assert await js_client.call("send", topic=project, event="file:synced", payload={"path": "a.ts"}) == "ok"
    message = await inbox.wait_for(lambda m: m["event"] == "file:synced")
    assert message["payload"] == {"path": "a.ts"}


async def test_self_and_ack_are_honoured_for_both_clients(py_client, js_client, project):
    inbox = Inbox()
    config = {"config": {"broadcast": {"self": True, "ack": True}}}
    channel = py_client.channel(project, private(config)).on_broadcast("echo", inbox.add)
    await subscribe(channel)
    await js_client.join(project, config={"broadcast": {"self": True, "ack": True}})

    await channel.send_broadcast("echo", {"from": "py"})
    assert (await inbox.wait_for(lambda m: True))["payload"] == {"from": "py"}
    assert await js_client.call("send", topic=project, event="echo", payload={"from": "js"}) == "ok"
    own = await js_client.expect(lambda e: e["type"] == "broadcast" and e["payload"] == {"from": "js"})
    assert own["event"] == "echo"


async def test_a_sender_without_self_does_not_hear_itself(js_client, project):
    await js_client.join(project)
    assert await js_client.call("send", topic=project, event="quiet", payload={}) == "ok"
    with pytest.raises(TimeoutError):
        await js_client.expect(lambda e: e["type"] == "broadcast", timeout=0.5)


async def test_raw_bytes_from_js_reach_js_as_kind_4_and_skip_python(realtime_server, py_client, js_client, project):
    inbox = Inbox()
    await subscribe(py_client.channel(project, private()).on_broadcast("*", inbox.add))
    other = await JsClient.start(realtime_server.http_base, service_token())
    try:
        await other.join(project)
        await js_client.join(project)
        await js_client.call("send", topic=project, event="blob", hex="cafebabe")
        received = await other.expect(lambda e: e["type"] == "broadcast")
        assert received["payload"] == {"hex": "cafebabe"}
        await asyncio.sleep(0.3)
        assert inbox.items == []
    finally:
        await other.close()


async def test_presence_state_and_diffs_reach_both_clients(py_client, js_client, project):
    channel = py_client.channel(project, private({"config": {"presence": {"key": "py-user"}}}))
    joins, leaves = Inbox(), Inbox()
    channel.on_presence_join(lambda key, current, new: joins.add((key, new)))
    channel.on_presence_leave(lambda key, current, left: leaves.add(key))
    await subscribe(channel)
    await js_client.join(project, config={"presence": {"key": "js-user"}}, presence=True)

    assert await js_client.call("track", topic=project, payload={"editing": "a.ts"}) == "ok"
    _, new = await joins.wait_for(lambda j: j[0] == "js-user")
    assert new[0]["editing"] == "a.ts"

    await channel.track({"editing": "b.ts"})
    synced = await js_client.expect(lambda e: e["type"] == "presence" and "py-user" in e["state"])
    assert synced["state"]["py-user"][0]["editing"] == "b.ts"
    assert await js_client.call("untrack", topic=project) == "ok"
    assert await leaves.wait_for(lambda k: k == "js-user") == "js-user"


async def test_a_late_joiner_gets_the_presence_state(realtime_server, js_client, project):
    await js_client.join(project, config={"presence": {"key": "first"}}, presence=True)
    await js_client.call("track", topic=project, payload={"n": 1})
    late = await JsClient.start(realtime_server.http_base, service_token())
    try:
        await late.join(project, presence=True)
        synced = await late.expect(lambda e: e["type"] == "presence" and "first" in e["state"])
        assert synced["state"]["first"][0]["n"] == 1
    finally:
        await late.close()


async def test_rest_broadcasts_reach_both_clients(realtime_server, py_client, js_client, project):
    inbox = Inbox()
    await subscribe(py_client.channel(project, private()).on_broadcast("*", inbox.add))
    await js_client.join(project)
    message = {"topic": project, "event": "session:status", "payload": {"status": "active"}, "private": True}
    body = {"messages": [message]}
    headers = {"Authorization": f"Bearer {service_token()}"}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{realtime_server.http_base}/api/broadcast", json=body, headers=headers)
    assert response.status_code == 202
    assert (await inbox.wait_for(lambda m: True))["payload"] == {"status": "active"}
    assert (await js_client.expect(lambda e: e["type"] == "broadcast"))["payload"] == {"status": "active"}

    assert await js_client.call("http_send", topic=project, event="agent:log", payload={"line": "hi"}) == {
        "success": True
    }
    assert (await inbox.wait_for(lambda m: m["event"] == "agent:log"))["payload"] == {"line": "hi"}


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


async def test_leaving_closes_the_channel_for_both_clients(py_client, js_client, project):
    channel = py_client.channel(project, private())
    states: list[RealtimeSubscribeStates] = []
    await channel.subscribe(lambda state, error: states.append(state))
    await channel.unsubscribe()
    await async_wait_until(lambda: states[-1] == RealtimeSubscribeStates.CLOSED, timeout=5, what="the channel closed")

    await js_client.join(project)
    assert await js_client.call("leave", topic=project) == "ok"
    closed = await js_client.expect(lambda e: e["type"] == "status" and e["status"] == "CLOSED")
    assert closed["topic"] == project


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


async def test_realtime_js_in_vsn_1_0_0_mode_talks_with_a_vsn_2_0_0_client(realtime_server, js_client, project):
    v1 = await JsClient.start(realtime_server.http_base, service_token(), vsn="1.0.0")
    try:
        assert (await v1.join(project, presence=True))["status"] == "SUBSCRIBED"
        await js_client.join(project)
        await js_client.call("send", topic=project, event="file:update", payload={"path": "b.ts"})
        assert (await v1.expect(lambda e: e["type"] == "broadcast"))["payload"] == {"path": "b.ts"}
        await v1.call("send", topic=project, event="file:synced", payload={"path": "b.ts"})
        assert (await js_client.expect(lambda e: e["type"] == "broadcast"))["event"] == "file:synced"
        await v1.call("track", topic=project, payload={"v": 1})
        assert (await v1.expect(lambda e: e["type"] == "presence" and e["event"] == "join"))["msg"]["newPresences"]
    finally:
        await v1.close()
