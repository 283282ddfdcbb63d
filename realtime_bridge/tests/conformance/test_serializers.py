"""vsn 1.0.0 (JSON objects) and 2.0.0 (JSON arrays, binary broadcasts) on one topic, and raw byte payloads."""

from __future__ import annotations

import pytest

from realtime_bridge.tests.clients import Inbox
from realtime_bridge.tests.conformance.conftest import Clients, new_topic, private, subscribe

pytestmark = pytest.mark.slow


# supabase/realtime: lib/realtime_web/endpoint.ex (Phoenix.Socket.V1.JSONSerializer for ~> 1.0.0,
# RealtimeWeb.Socket.V2Serializer for ~> 2.0.0, chosen per socket)
async def test_realtime_js_in_vsn_1_0_0_talks_with_realtime_js_in_vsn_2_0_0(clients: Clients) -> None:
    topic = new_topic()
    v1, v2 = await clients.js(vsn="1.0.0"), await clients.js(vsn="2.0.0")
    assert (await v1.join(topic, presence=True))["status"] == "SUBSCRIBED"
    assert (await v2.join(topic))["status"] == "SUBSCRIBED"
    await v2.call("send", topic=topic, event="file:update", payload={"path": "b.ts"})
    assert (await v1.expect(lambda e: e["type"] == "broadcast"))["payload"] == {"path": "b.ts"}
    await v1.call("send", topic=topic, event="file:synced", payload={"path": "b.ts"})
    assert (await v2.expect(lambda e: e["type"] == "broadcast"))["event"] == "file:synced"
    await v1.call("track", topic=topic, payload={"v": 1})
    joined = await v1.expect(lambda e: e["type"] == "presence" and e["event"] == "join")
    assert joined["msg"]["newPresences"][0]["v"] == 1


# supabase/realtime: lib/realtime_web/endpoint.ex (V1 JSONSerializer: the Python client speaks vsn 1.0.0 only)
async def test_the_python_client_in_vsn_1_0_0_talks_with_supabase_js_in_vsn_2_0_0(clients: Clients) -> None:
    topic, inbox = new_topic(), Inbox()
    python, js = await clients.python(), await clients.js(library="supabase-js")
    await subscribe(python.channel(topic, private()).on_broadcast("*", inbox.add))
    await js.join(topic)
    await js.call("send", topic=topic, event="nested", payload={"a": [1, {"b": None}], "u": "é✓"})
    assert (await inbox.wait_for(lambda m: True))["payload"] == {"a": [1, {"b": None}], "u": "é✓"}


# supabase/realtime: lib/realtime_web/socket/v2_serializer.ex (a kind 3 user broadcast push in, the bytes out as
# kind 4 with the payload encoding "binary") and lib/realtime_web/channels/realtime_channel/message_dispatcher.ex
# (a V1 socket cannot carry it: UserBroadcast.convert_to_json_broadcast fails and the V1 receiver is skipped)
async def test_raw_bytes_reach_vsn_2_0_0_as_an_array_buffer_and_skip_vsn_1_0_0(clients: Clients) -> None:
    topic, inbox = new_topic(), Inbox()
    python = await clients.python()
    await subscribe(python.channel(topic, private()).on_broadcast("*", inbox.add))
    sender, receiver = await clients.js(), await clients.js()
    await receiver.join(topic)
    await sender.join(topic)
    await sender.call("send", topic=topic, event="blob", hex="cafebabe00ff")
    received = await receiver.expect(lambda e: e["type"] == "broadcast")
    assert (received["event"], received["payload"]) == ("blob", {"hex": "cafebabe00ff"})
    # A JSON broadcast sent after the bytes reaches Python; the bytes never did.
    await sender.call("send", topic=topic, event="after", payload={"n": 1})
    assert (await inbox.wait_for(lambda m: True))["event"] == "after"
    assert inbox.items == []


# supabase/realtime: lib/realtime_web/controllers/broadcast_single_controller.ex (application/octet-stream body)
# and lib/realtime_web/socket/v2_serializer.ex (delivered as binary to vsn 2.0.0)
async def test_bytes_sent_over_rest_by_the_python_client_reach_realtime_js_as_bytes(clients: Clients) -> None:
    topic = new_topic()
    js = await clients.js()
    await js.join(topic)
    python = await clients.python()
    await python.channel(topic, private()).http_send("blob", b"\x00\x01binary\xff")
    received = await js.expect(lambda e: e["type"] == "broadcast")
    assert (received["event"], received["payload"]) == ("blob", {"hex": b"\x00\x01binary\xff".hex()})
