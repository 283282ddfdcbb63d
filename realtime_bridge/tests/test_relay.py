"""Publishing from outside the server process in the embedded mode (the task cluster's case)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.test import override_settings
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from realtime_bridge import events, publish, relay
from realtime_bridge.testing import RealtimeServer, service_token
from velocity.auth import issue_token
from velocity.testing import async_wait_until

pytestmark = pytest.mark.slow


PRIVATE: Any = {"config": {"private": True}}  # project channels are private only


@pytest.fixture
def outside_the_server(realtime_server: RealtimeServer) -> Iterator[None]:
    """This process plays the embedded mode's task cluster: not the server, relaying over HTTP.

    ``needed`` is forced because CI runs the suite with Redis, where a cluster would publish directly."""
    with (
        override_settings(ORCHESTRATOR_URL=f"http://127.0.0.1:{realtime_server.port}"),
        mock.patch.object(relay, "needed", return_value=True),
    ):
        yield


async def test_a_status_broadcast_from_the_cluster_reaches_the_projects_subscribers(
    realtime_server: RealtimeServer, outside_the_server: None
) -> None:
    project = str(uuid.uuid4())
    received: list[Any] = []
    client = AsyncRealtimeClient(realtime_server.http_base, token=service_token(), auto_reconnect=False)
    await client.connect()
    try:
        states: list[RealtimeSubscribeStates] = []
        await (
            client.channel(f"project:{project}", PRIVATE)
            .on_broadcast("session:status", received.append)
            .subscribe(lambda state, error: states.append(state))
        )
        assert states == [RealtimeSubscribeStates.SUBSCRIBED]
        payload = {"session_id": "s1", "status": "active", "preview_url": "http://x/"}
        await sync_to_async(publish.broadcast)(topic=f"project:{project}", event="session:status", payload=payload)
        await async_wait_until(lambda: received, timeout=5, what="the relayed broadcast")
    finally:
        await client.close()
    assert received[0]["payload"] == payload


def test_the_relay_endpoint_refuses_anything_but_the_service_role(realtime_server: RealtimeServer) -> None:
    url = f"http://127.0.0.1:{realtime_server.port}{relay.RELAY_PATH}"
    body = {"kind": "broadcast", "message": {"topic": "project:x", "event": "e", "payload": {}}}
    assert httpx.post(url, json=body).status_code == 401
    user = issue_token(sub=uuid.uuid4())
    assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {user}"}).status_code == 403
    ok = httpx.post(url, json=body, headers={"Authorization": f"Bearer {service_token()}"})
    assert ok.status_code == 202
    bad = httpx.post(url, json={"kind": "event"}, headers={"Authorization": f"Bearer {service_token()}"})
    assert bad.status_code == 400


async def test_a_bulk_writes_announcements_go_in_one_relay_request_and_arrive(
    realtime_server: RealtimeServer, outside_the_server: None
) -> None:
    """``publish.batched`` (the expiry sweep): events, row changes and broadcasts together, in one request."""
    project = str(uuid.uuid4())
    received: list[Any] = []
    client = AsyncRealtimeClient(realtime_server.http_base, token=service_token(), auto_reconnect=False)
    await client.connect()
    sent: list[Any] = []
    real_send = relay._send

    def counting_send(body: dict[str, Any]) -> None:
        sent.append(body)
        real_send(body)

    def announce() -> None:
        with mock.patch.object(relay, "_send", counting_send), publish.batched():
            for n in range(3):
                publish.publish(events.session_status(session_id=f"s{n}", project_id=project, status="ended"))
                publish.publish_row_change({"schema": "public", "table": "t", "type": "UPDATE", "record": {"n": n}})
                publish.broadcast(topic=f"project:{project}", event="session:status", payload={"n": n})

    try:
        await client.channel(f"project:{project}", PRIVATE).on_broadcast("session:status", received.append).subscribe()
        await asyncio.sleep(0.2)
        await sync_to_async(announce)()
        await async_wait_until(lambda: len(received) == 3, timeout=5, what="three relayed broadcasts")
    finally:
        await client.close()
    assert [m["payload"]["n"] for m in received] == [0, 1, 2]
    assert [body["kind"] for body in sent] == ["batch"]
    assert [item["kind"] for item in sent[0]["items"]] == ["event", "row_change", "broadcast"] * 3
