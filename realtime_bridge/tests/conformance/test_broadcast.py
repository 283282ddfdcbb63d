"""Broadcast as Supabase does it, through the official clients: realtime-js, supabase-js and Python ``realtime``."""

from __future__ import annotations

import pytest

from realtime_bridge.tests.clients import Inbox
from realtime_bridge.tests.conformance.conftest import Clients, new_topic, private, subscribe

pytestmark = pytest.mark.slow


# supabase/realtime: lib/realtime_web/channels/realtime_channel/broadcast_handler.ex (self and ack)
async def test_a_broadcast_with_self_and_ack_is_acked_and_heard_by_its_sender(clients: Clients) -> None:
    topic = new_topic()
    client = await clients.js()
    joined = await client.join(topic, config={"broadcast": {"self": True, "ack": True}})
    assert joined["status"] == "SUBSCRIBED", joined
    answer = await client.call("send", topic=topic, event="ping", payload={"n": 1})
    heard = await client.expect(lambda e: e["type"] == "broadcast" and e["event"] == "ping")
    assert answer == "ok"
    assert heard["payload"] == {"n": 1}


# supabase/realtime: lib/realtime_web/channels/realtime_channel/broadcast_handler.ex (self and ack)
async def test_the_python_client_hears_itself_with_self_and_ack(clients: Clients) -> None:
    topic, inbox = new_topic(), Inbox()
    python = await clients.python()
    channel = python.channel(topic, private({"config": {"broadcast": {"self": True, "ack": True}}}))
    channel.on_broadcast("echo", inbox.add)
    await subscribe(channel)
    await channel.send_broadcast("echo", {"from": "py"})
    assert (await inbox.wait_for(lambda m: True))["payload"] == {"from": "py"}


# supabase/realtime: lib/realtime_web/channels/realtime_channel/broadcast_handler.ex (without self the sender is
# skipped: the broadcast goes out with broadcast_from)
async def test_a_sender_without_self_does_not_hear_itself(clients: Clients) -> None:
    topic = new_topic()
    sender, listener = await clients.js(), await clients.js()
    await sender.join(topic)
    await listener.join(topic)
    assert await sender.call("send", topic=topic, event="quiet", payload={"n": 1}) == "ok"
    assert (await listener.expect(lambda e: e["type"] == "broadcast"))["payload"] == {"n": 1}
    # The listener answers only after hearing it: an echo to the sender would have been queued before the answer.
    await listener.call("send", topic=topic, event="heard", payload={})
    await sender.expect(lambda e: e["type"] == "broadcast" and e["event"] == "heard")
    assert [e for e in sender.events if e["type"] == "broadcast" and e["event"] == "quiet"] == []


# supabase/realtime: lib/realtime_web/channels/realtime_channel/broadcast_handler.ex and
# lib/realtime_web/channels/realtime_channel/message_dispatcher.ex (one broadcast, every serializer)
async def test_python_and_realtime_js_exchange_broadcasts_both_ways(clients: Clients) -> None:
    topic, inbox = new_topic(), Inbox()
    python, js = await clients.python(), await clients.js()
    channel = python.channel(topic, private()).on_broadcast("*", inbox.add)
    assert (await subscribe(channel))[0].value == "SUBSCRIBED"
    assert (await js.join(topic))["status"] == "SUBSCRIBED"

    await channel.send_broadcast("file:update", {"path": "a.ts", "version": 1})
    received = await js.expect(lambda e: e["type"] == "broadcast")
    assert (received["event"], received["payload"]) == ("file:update", {"path": "a.ts", "version": 1})

    assert await js.call("send", topic=topic, event="file:synced", payload={"path": "a.ts"}) == "ok"
    message = await inbox.wait_for(lambda m: m["event"] == "file:synced")
    assert message["payload"] == {"path": "a.ts"}


# supabase/realtime: lib/realtime_web/channels/realtime_channel/broadcast_handler.ex (supabase-js is realtime-js
# built by createClient: the same frames, the apikey from the project key)
async def test_supabase_js_and_realtime_js_exchange_broadcasts(clients: Clients) -> None:
    topic = new_topic()
    frontend = await clients.js(library="supabase-js")
    other = await clients.js()
    assert (await frontend.join(topic, config={"broadcast": {"ack": True}}))["status"] == "SUBSCRIBED"
    assert (await other.join(topic))["status"] == "SUBSCRIBED"
    assert await frontend.call("send", topic=topic, event="file:update", payload={"v": 2}) == "ok"
    assert (await other.expect(lambda e: e["type"] == "broadcast"))["payload"] == {"v": 2}
    await other.call("send", topic=topic, event="file:synced", payload={"v": 2})
    assert (await frontend.expect(lambda e: e["type"] == "broadcast"))["event"] == "file:synced"
