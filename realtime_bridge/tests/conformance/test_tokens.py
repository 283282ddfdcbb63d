"""Token refresh (``setAuth`` sends ``access_token`` to every joined channel) and expiry (the channel is ended).

The channel is the user's own ``user:{sub}``: a topic a signed-in user may read on both targets (on Supabase
through the read policy of docs/realtime.md *Conformance with Supabase*).
"""

from __future__ import annotations

import re
import uuid

import pytest
from realtime import RealtimeSubscribeStates

from realtime_bridge.tests.clients import Inbox
from realtime_bridge.tests.conformance.conftest import Clients, Target, private, subscribe

pytestmark = pytest.mark.slow


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (handle_in "access_token": the new token is
# verified and the read policies asked again; neither broadcast nor presence read left answers "You do not have
# permissions to read from this Channel topic" from maybe_assign_policies)
async def test_a_refresh_to_a_token_that_may_not_read_ends_the_channel(target: Target, clients: Clients) -> None:
    owner = uuid.uuid4()
    topic = f"user:{owner}"
    js = await clients.js(target.anon_key)
    await js.call("set_auth", token=target.user_key(owner))
    assert (await js.join(topic))["status"] == "SUBSCRIBED"
    await js.call("set_auth", token=target.user_key())
    system = await js.expect(lambda e: e["type"] == "system" and e["topic"] == topic)
    assert system["payload"]["status"] == "error"
    assert system["payload"]["message"] == f"You do not have permissions to read from this Channel topic: {topic}"
    assert (await js.expect(lambda e: e["type"] == "status" and e["topic"] == topic))["status"] == "CLOSED"


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (handle_in "access_token" with a valid token
# of a reader: no reply, the channel stays and keeps receiving)
async def test_a_refreshed_token_keeps_the_python_channel_receiving(target: Target, clients: Clients) -> None:
    owner, inbox = uuid.uuid4(), Inbox()
    topic = f"user:{owner}"
    python = await clients.python(target.anon_key, access_token=target.user_key(owner, ttl=600))
    channel = python.channel(topic, private()).on_broadcast("*", inbox.add)
    assert (await subscribe(channel))[0] == RealtimeSubscribeStates.SUBSCRIBED
    await python.set_auth(target.user_key(owner, ttl=3600))
    message = {"topic": topic, "event": "session:status", "payload": {"status": "active"}, "private": True}
    assert (await target.rest_broadcast([message])).status_code == 202
    assert (await inbox.wait_for(lambda m: True))["payload"] == {"status": "active"}
    assert channel.is_joined


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (:confirm_token, a timer at the token's exp at
# the latest, then shutdown_response: a system error and the channel stopped) and
# lib/realtime_web/channels/auth/channels_authorization.ex ("Token has expired N seconds ago")
async def test_an_expiring_token_ends_the_channel_with_a_system_message(target: Target, clients: Clients) -> None:
    owner = uuid.uuid4()
    topic = f"user:{owner}"
    js = await clients.js(target.anon_key)
    await js.call("set_auth", token=target.user_key(owner, ttl=3))
    assert (await js.join(topic))["status"] == "SUBSCRIBED"
    system = await js.expect(lambda e: e["type"] == "system" and e["topic"] == topic, timeout=30)
    assert system["payload"]["status"] == "error"
    assert re.fullmatch(r"Token has expired \d+ seconds ago", system["payload"]["message"]), system
    closed = await js.expect(lambda e: e["type"] == "status" and e["topic"] == topic, timeout=10)
    assert closed["status"] == "CLOSED"
