"""Leaving a channel: ``phx_leave`` is answered, the channel closes, and it hears nothing more."""

from __future__ import annotations

import pytest
from realtime import RealtimeSubscribeStates

from realtime_bridge.tests.conformance.conftest import Clients, new_topic, private
from velocity.testing import async_wait_until

pytestmark = pytest.mark.slow


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (terminate: the channel process ends on leave;
# phx_leave itself is answered by Phoenix.Channel, whose reply and phx_close the clients wait for)
async def test_leaving_closes_the_channel_for_both_clients(clients: Clients) -> None:
    topic = new_topic()
    python = await clients.python()
    channel = python.channel(topic, private())
    states: list[RealtimeSubscribeStates] = []
    await channel.subscribe(lambda state, error: states.append(state))
    await channel.unsubscribe()
    await async_wait_until(lambda: states[-1] == RealtimeSubscribeStates.CLOSED, timeout=5, what="the channel closed")

    js = await clients.js()
    await js.join(topic)
    assert await js.call("leave", topic=topic) == "ok"
    closed = await js.expect(lambda e: e["type"] == "status" and e["status"] == "CLOSED")
    assert closed["topic"] == topic


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (terminate: no longer subscribed to the topic)
async def test_a_client_that_left_hears_nothing_more(clients: Clients) -> None:
    topic, other_topic = new_topic(), new_topic()
    leaver, sender = await clients.js(), await clients.js()
    for client in (leaver, sender):
        await client.join(topic)
        await client.join(other_topic)
    assert await leaver.call("leave", topic=topic) == "ok"
    await leaver.expect(lambda e: e["type"] == "status" and e["topic"] == topic and e["status"] == "CLOSED")
    await sender.call("send", topic=topic, event="after", payload={"n": 1})
    # A marker on the leaver's other channel, sent afterwards by the same client, comes through.
    await sender.call("send", topic=other_topic, event="marker", payload={})
    await leaver.expect(lambda e: e["type"] == "broadcast" and e["event"] == "marker")
    assert [e for e in leaver.events if e["type"] == "broadcast"] == []
