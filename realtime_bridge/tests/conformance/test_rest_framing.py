"""How a REST broadcast reaches vsn 2.0.0 sockets: the single form as Realtime's user broadcast (binary kind 4),
the batch form as a plain Phoenix broadcast (a text frame)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from realtime_bridge.tests.clients import JsClient
from realtime_bridge.tests.conformance.conftest import Target
from realtime_bridge.tests.conformance.wire import raw_socket

pytestmark = pytest.mark.slow

PUBLIC = {"private": False, "broadcast": {"self": False, "ack": False}, "presence": {"key": "", "enabled": False}}


def kind_4(topic: str, event: str, payload: bytes) -> bytes:
    """Realtime's user broadcast frame with a JSON payload and no metadata (v2_serializer.ex)."""
    header = bytes([4, len(topic), len(event), 0, 1])
    return header + topic.encode() + event.encode() + payload


# supabase/realtime: lib/realtime/tenants/single_broadcast.ex (build_json_broadcast/3: a UserBroadcast) and
# lib/realtime_web/socket/v2_serializer.ex (a UserBroadcast is binary kind 4 for vsn 2.0.0)
async def test_a_single_json_rest_broadcast_reaches_vsn_2_as_binary_kind_4(target: Target) -> None:
    name = f"conformance-{uuid.uuid4()}"
    sender = await JsClient.start(target.http_base, target.anon_key)
    try:
        async with raw_socket(target, target.anon_key, vsn="2.0.0") as socket:
            await socket.socket.send(json.dumps(["1", "1", f"realtime:{name}", "phx_join", {"config": PUBLIC}]))
            assert json.loads(await socket.frame())[4]["status"] == "ok"
            await sender.join(name, config={"private": False})
            sent = await sender.call("http_send", topic=name, event="note", payload={"text": "hi"})
            frame = await socket.frame()
    finally:
        await sender.close()
    assert sent == {"success": True}
    assert isinstance(frame, bytes)
    prefix = kind_4(f"realtime:{name}", "note", b"")
    assert frame.startswith(prefix), frame
    assert json.loads(frame[len(prefix) :]) == {"text": "hi"}


# supabase/realtime: lib/realtime/tenants/batch_broadcast.ex (send_message_and_count/4: a Phoenix.Socket.Broadcast,
# which the V2 serializer writes as a JSON array text frame)
async def test_a_batch_rest_broadcast_reaches_vsn_2_as_a_text_frame(target: Target) -> None:
    name = f"conformance-{uuid.uuid4()}"
    async with raw_socket(target, target.anon_key, vsn="2.0.0") as socket:
        await socket.socket.send(json.dumps(["1", "1", f"realtime:{name}", "phx_join", {"config": PUBLIC}]))
        assert json.loads(await socket.frame())[4]["status"] == "ok"
        message = {"topic": name, "event": "note", "payload": {"text": "hi"}, "private": False}
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{target.rest_base}/broadcast",
                json={"messages": [message]},
                headers={"apikey": target.anon_key, "Authorization": f"Bearer {target.anon_key}"},
            )
        frame = await socket.frame()
    assert response.status_code == 202
    assert isinstance(frame, str)
    assert json.loads(frame) == [
        None,
        None,
        f"realtime:{name}",
        "broadcast",
        {"type": "broadcast", "event": "note", "payload": {"text": "hi"}},
    ]
