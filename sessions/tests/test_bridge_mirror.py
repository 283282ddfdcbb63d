"""The Supabase mirror (client mode) against our own endpoint standing in for Supabase."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from realtime_bridge import policies, services
from realtime_bridge.bridge import Bridge, run_bridge
from realtime_bridge.testing import RealtimeServer, service_token
from realtime_bridge.tests.clients import JsClient
from sessions.testing import live_session

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def wanted() -> set[str]:
    return policies.mirrored_topics()


@pytest.fixture
async def bridge(realtime_server: RealtimeServer) -> AsyncIterator[Bridge]:
    mirror = Bridge(
        url=realtime_server.http_base.removesuffix("/realtime/v1"), key=service_token(), channels_per_socket=1
    )
    yield mirror
    await mirror.close()


async def ops_listener() -> tuple[Any, str]:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("ops", channel)
    return layer, channel


async def next_bridged(layer: Any, channel: str) -> dict[str, Any]:
    async with asyncio.timeout(10):  # generous: CI shares two cores
        while True:
            event = (await layer.receive(channel))["event"]
            if event["kind"] == "realtime.message" and event["data"]["source"] == "bridge":
                return event


async def test_the_bridge_mirrors_a_live_projects_broadcasts_to_the_operators(realtime_server, bridge):
    project = str(uuid.uuid4())
    await database_sync_to_async(live_session)(project=project)
    layer, channel = await ops_listener()
    await bridge.reconcile(await wanted())
    assert bridge.joined == {f"project:{project}"}

    agent = await JsClient.start(realtime_server.http_base, service_token())
    try:
        await agent.join(f"project:{project}")
        payload = {"path": "a.ts", "version": 2, "sha256": "00", "latency_ms": 12}
        await agent.call("send", topic=f"project:{project}", event="file:synced", payload=payload)
        event = await next_bridged(layer, channel)
    finally:
        await agent.close()
    assert (event["project_id"], event["data"]["event"], event["data"]["path"]) == (project, "file:synced", "a.ts")


async def test_the_bridge_spreads_channels_over_sockets_and_leaves_ended_projects(bridge):
    first, second = f"project:{uuid.uuid4()}", f"project:{uuid.uuid4()}"
    await bridge.reconcile({first, second})
    assert bridge.joined == {first, second}
    assert len(bridge.sockets) == 2
    await bridge.reconcile({first})
    assert bridge.joined == {first}
    assert len(bridge.sockets) == 1


async def test_the_bridge_rejoins_after_losing_its_socket(bridge):
    topic = f"project:{uuid.uuid4()}"
    await bridge.reconcile({topic})
    connection = bridge.sockets[0].client._ws_connection
    assert connection is not None
    await connection.close()
    await asyncio.sleep(0.2)
    await bridge.reconcile({topic})
    assert bridge.joined == {topic}
    assert bridge.sockets[0].alive


async def test_the_bridge_backs_off_when_it_cannot_connect():
    mirror = Bridge(url="http://127.0.0.1:9", key=service_token())
    await mirror.reconcile({"project:x"})
    assert mirror.joined == set()
    assert mirror.retry_at > 0
    assert mirror.failures == 1
    await mirror.close()


def test_only_one_instance_holds_the_bridge_lease_until_its_holder_dies():
    now = timezone.now()
    assert services.lease_acquire(holder="a", ttl=15, now=now)
    assert not services.lease_acquire(holder="b", ttl=15, now=now + timedelta(seconds=5))
    assert services.lease_acquire(holder="a", ttl=15, now=now + timedelta(seconds=10))
    assert services.lease_acquire(holder="b", ttl=15, now=now + timedelta(seconds=26))
    assert not services.lease_acquire(holder="a", ttl=15, now=now + timedelta(seconds=27))


async def test_run_bridge_joins_live_projects_and_gives_the_lease_back(realtime_server, settings):
    settings.SUPABASE_URL = realtime_server.http_base.removesuffix("/realtime/v1")
    settings.SUPABASE_SERVICE_ROLE_KEY = service_token()
    project = str(uuid.uuid4())
    await database_sync_to_async(live_session)(project=project)
    layer, channel = await ops_listener()
    stop = asyncio.Event()
    task = asyncio.create_task(run_bridge(stop, interval=0.1, ttl=5))
    agent = await JsClient.start(realtime_server.http_base, service_token())
    try:
        await agent.join(f"project:{project}")
        await asyncio.sleep(0.5)
        await agent.call("send", topic=f"project:{project}", event="agent:log", payload={"line": "ready"})
        assert (await next_bridged(layer, channel))["data"]["line"] == "ready"
    finally:
        await agent.close()
        stop.set()
        await task
    assert await database_sync_to_async(services.lease_acquire)(holder="other", ttl=5, now=timezone.now())
