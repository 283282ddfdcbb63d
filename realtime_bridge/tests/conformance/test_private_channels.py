"""Private channels: ``private: true`` joins are allowed or refused by the topic's read policy."""

from __future__ import annotations

import uuid

import pytest
from realtime import RealtimeSubscribeStates

from realtime_bridge.tests.conformance.conftest import Clients, Target, private, subscribe

pytestmark = pytest.mark.slow


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (a private join asks the read policy of
# realtime.messages for the topic) and lib/realtime/tenants/authorization.ex
async def test_a_user_may_join_the_private_topic_a_policy_allows(target: Target, clients: Clients) -> None:
    owner = uuid.uuid4()
    token = target.user_key(owner)
    js = await clients.js(target.anon_key)
    await js.call("set_auth", token=token)
    assert (await js.join(f"user:{owner}"))["status"] == "SUBSCRIBED"
    frontend = await clients.js(target.anon_key, library="supabase-js", access_token=token)
    assert (await frontend.join(f"user:{owner}"))["status"] == "SUBSCRIBED"
    python = await clients.python(target.anon_key, access_token=token)
    state, error = await subscribe(python.channel(f"user:{owner}", private()))
    assert (state, error) == (RealtimeSubscribeStates.SUBSCRIBED, None)


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex ("Unauthorized: You do not have permissions to
# read from this Channel topic: …" when no read policy allows the topic)
async def test_a_private_topic_no_policy_allows_is_refused(target: Target, clients: Clients) -> None:
    other = f"user:{uuid.uuid4()}"
    js = await clients.js(target.anon_key)
    await js.call("set_auth", token=target.user_key())
    refused = await js.join(other, timeout=15)
    assert refused["status"] == "CHANNEL_ERROR"
    assert refused["error"] == f"Unauthorized: You do not have permissions to read from this Channel topic: {other}"
    python = await clients.python(target.anon_key, access_token=target.user_key())
    state, error = await subscribe(python.channel(other, private()))
    assert state == RealtimeSubscribeStates.CHANNEL_ERROR
    assert f"You do not have permissions to read from this Channel topic: {other}" in str(error)
