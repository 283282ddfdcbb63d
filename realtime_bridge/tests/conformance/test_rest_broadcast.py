"""REST broadcast: ``POST /realtime/v1/api/broadcast`` (a ``messages`` list) and the single form, to both clients."""

from __future__ import annotations

import pytest

from realtime_bridge.tests.clients import Inbox
from realtime_bridge.tests.conformance.conftest import Clients, Target, new_topic, private, subscribe

pytestmark = pytest.mark.slow


# supabase/realtime: lib/realtime_web/controllers/broadcast_controller.ex (202, empty body) and
# lib/realtime/tenants/batch_broadcast.ex (each message to its topic, "private" choosing the private channel)
async def test_a_batch_reaches_every_topic_and_both_clients_in_order(target: Target, clients: Clients) -> None:
    first, second, inbox = new_topic(), new_topic(), Inbox()
    python, js = await clients.python(), await clients.js()
    await subscribe(python.channel(first, private()).on_broadcast("*", inbox.add))
    await js.join(first)
    await js.join(second)
    messages = [
        {"topic": first, "event": "session:status", "payload": {"status": "creating"}, "private": True},
        {"topic": first, "event": "session:status", "payload": {"status": "active"}, "private": True},
        {"topic": second, "event": "agent:log", "payload": {"line": "hi"}, "private": True},
    ]
    response = await target.rest_broadcast(messages)
    assert (response.status_code, response.content) == (202, b"")
    heard = [await js.expect(lambda e: e["type"] == "broadcast" and e["topic"] == first) for _ in range(2)]
    assert [e["payload"]["status"] for e in heard] == ["creating", "active"]
    assert (await js.expect(lambda e: e["type"] == "broadcast" and e["topic"] == second))["event"] == "agent:log"
    assert [(await inbox.wait_for(lambda m: True))["payload"]["status"] for _ in range(2)] == ["creating", "active"]


# supabase/realtime: lib/realtime/tenants/batch_broadcast.ex (a message without "private" goes to the public
# channel: a private subscriber does not hear it)
async def test_a_batch_message_for_the_public_channel_skips_private_subscribers(
    target: Target, clients: Clients
) -> None:
    topic = new_topic()
    js = await clients.js()
    await js.join(topic)
    public = {"topic": topic, "event": "public", "payload": {"n": 1}}
    marker = {"topic": topic, "event": "private", "payload": {"n": 2}, "private": True}
    assert (await target.rest_broadcast([public])).status_code == 202
    assert (await target.rest_broadcast([marker])).status_code == 202
    assert (await js.expect(lambda e: e["type"] == "broadcast"))["event"] == "private"
    assert [e for e in js.events if e["type"] == "broadcast"] == []


# supabase/realtime: lib/realtime_web/controllers/broadcast_controller.ex, as realtime-js calls it: send() on a
# channel that never joined posts {"messages": [...]} (RealtimeChannel.send, REST fallback)
async def test_realtime_js_send_without_a_join_goes_through_the_batch_endpoint(clients: Clients) -> None:
    topic, inbox = new_topic(), Inbox()
    python = await clients.python()
    await subscribe(python.channel(topic, private()).on_broadcast("*", inbox.add))
    js = await clients.js()
    answer = await js.call("rest_send", topic=topic, config={"private": True}, event="agent:log", payload={"n": 3})
    assert answer == "ok"
    message = await inbox.wait_for(lambda m: True)
    assert (message["event"], message["payload"]) == ("agent:log", {"n": 3})


# supabase/realtime: lib/realtime_web/controllers/broadcast_single_controller.ex (POST
# /api/broadcast/<topic>/events/<event>?private=true, 202), called by realtime-js httpSend and Python http_send
async def test_the_single_form_reaches_both_clients(clients: Clients) -> None:
    topic, inbox = new_topic(), Inbox()
    python = await clients.python()
    channel = python.channel(topic, private()).on_broadcast("*", inbox.add)
    await subscribe(channel)
    js = await clients.js()
    await js.join(topic)
    assert await js.call("http_send", topic=topic, event="agent:log", payload={"line": "js"}) == {"success": True}
    assert (await inbox.wait_for(lambda m: True))["payload"] == {"line": "js"}
    await channel.http_send("agent:log", {"line": "py"})
    received = await js.expect(lambda e: e["type"] == "broadcast" and e["payload"] == {"line": "py"})
    assert received["event"] == "agent:log"
