"""Presence as Supabase does it: ``presence_state`` after the join, ``presence_diff`` on track and untrack."""

from __future__ import annotations

from typing import Any

import pytest

from realtime_bridge.tests.clients import Inbox
from realtime_bridge.tests.conformance.conftest import Clients, new_topic, private, subscribe

pytestmark = pytest.mark.slow


# supabase/realtime: lib/realtime_web/channels/realtime_channel/presence_handler.ex (track and untrack, each
# announced as a presence_diff to every subscriber, the tracker included)
async def test_presence_joins_and_leaves_reach_both_clients(clients: Clients) -> None:
    topic, joins, leaves = new_topic(), Inbox(), Inbox()
    python, js = await clients.python(), await clients.js()
    channel = python.channel(topic, private({"config": {"presence": {"key": "py-user"}}}))
    channel.on_presence_join(lambda key, current, new: joins.add((key, new)))
    channel.on_presence_leave(lambda key, current, left: leaves.add(key))
    await subscribe(channel)
    await js.join(topic, config={"presence": {"key": "js-user"}}, presence=True)

    assert await js.call("track", topic=topic, payload={"editing": "a.ts"}) == "ok"
    _, new = await joins.wait_for(lambda j: j[0] == "js-user")
    assert new[0]["editing"] == "a.ts"

    await channel.track({"editing": "b.ts"})
    synced = await js.expect(lambda e: e["type"] == "presence" and "py-user" in e["state"])
    assert synced["state"]["py-user"][0]["editing"] == "b.ts"
    assert await js.call("untrack", topic=topic) == "ok"
    assert await leaves.wait_for(lambda k: k == "js-user") == "js-user"


# supabase/realtime: lib/realtime_web/channels/realtime_channel/presence_handler.ex (the tracker hears its own
# join: presence_diff goes to the tracker too)
async def test_the_tracker_hears_its_own_join(clients: Clients) -> None:
    topic = new_topic()
    js = await clients.js()
    await js.join(topic, config={"presence": {"key": "me"}}, presence=True)
    await js.call("track", topic=topic, payload={"at": 1})
    joined = await js.expect(lambda e: e["type"] == "presence" and e["event"] == "join")
    assert joined["msg"]["key"] == "me"
    assert joined["msg"]["newPresences"][0]["at"] == 1
    assert (await js.call("presence_state", topic=topic))["me"][0]["at"] == 1


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (:sync_presence pushes presence_state after
# the join) and lib/realtime_web/channels/realtime_channel/presence_handler.ex
async def test_a_late_joiner_gets_the_presence_state(clients: Clients) -> None:
    topic = new_topic()
    first = await clients.js()
    await first.join(topic, config={"presence": {"key": "first"}}, presence=True)
    await first.call("track", topic=topic, payload={"n": 1})
    await first.expect(lambda e: e["type"] == "presence" and e["event"] == "join")
    late = await clients.js(library="supabase-js")
    await late.join(topic, presence=True)
    synced = await late.expect(lambda e: e["type"] == "presence" and "first" in e["state"])
    assert synced["state"]["first"][0]["n"] == 1


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (:sync_presence) for the Python client
async def test_a_late_python_joiner_learns_the_existing_presences(clients: Clients) -> None:
    topic, joins = new_topic(), Inbox()
    js = await clients.js()
    await js.join(topic, config={"presence": {"key": "early"}}, presence=True)
    await js.call("track", topic=topic, payload={"since": 1})
    await js.expect(lambda e: e["type"] == "presence" and e["event"] == "join")
    python = await clients.python()
    channel = python.channel(topic, private()).on_presence_join(lambda key, current, new: joins.add((key, new)))
    await subscribe(channel)
    _, new = await joins.wait_for(lambda j: j[0] == "early")
    assert new[0]["since"] == 1
    state: Any = channel.presence_state()
    assert state["early"][0]["since"] == 1
