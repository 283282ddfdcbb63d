"""Broadcast as Supabase does it, through both official clients."""

from __future__ import annotations

import uuid

import pytest

from realtime_bridge.tests.clients import JsClient
from realtime_bridge.tests.conformance.conftest import Target

pytestmark = pytest.mark.slow


# supabase/realtime: lib/realtime_web/channels/realtime_channel/broadcast_handler.ex (self and ack)
async def test_a_broadcast_with_self_and_ack_is_acked_and_heard_by_its_sender(target: Target) -> None:
    topic = f"conformance-{uuid.uuid4()}"
    client = await JsClient.start(target.http_base, target.service_key)
    try:
        joined = await client.join(topic, config={"private": False, "broadcast": {"self": True, "ack": True}})
        assert joined["status"] == "SUBSCRIBED", joined
        answer = await client.call("send", topic=topic, event="ping", payload={"n": 1})
        heard = await client.expect(lambda e: e["type"] == "broadcast" and e["event"] == "ping")
    finally:
        await client.close()
    assert answer == "ok"
    assert heard["payload"] == {"n": 1}
