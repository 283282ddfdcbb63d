"""Who hears a topic's presence_diff, as Supabase Realtime's dispatcher decides it.

realtime-js and the Python client enable presence at the join as soon as a presence listener is attached, so
a subscriber that did not enable presence is a raw vsn 1.0.0 socket here (it joins exactly as a client without
presence listeners does); the tracker is realtime-js.
"""

from __future__ import annotations

import uuid

import pytest

from realtime_bridge.tests.clients import JsClient
from realtime_bridge.tests.conformance.conftest import Target
from realtime_bridge.tests.conformance.wire import raw_socket

pytestmark = pytest.mark.slow

NO_PRESENCE = {"broadcast": {"self": False, "ack": False}, "presence": {"key": "", "enabled": False}}


# supabase/realtime: lib/realtime_web/channels/realtime_channel/message_dispatcher.ex (dispatch/3 for
# presence_diff: a public channel's subscriber has presence read, so it gets every diff, presence enabled or not)
async def test_presence_diff_reaches_a_public_subscriber_that_did_not_enable_presence(target: Target) -> None:
    name = f"conformance-{uuid.uuid4()}"
    tracker = await JsClient.start(target.http_base, target.anon_key)
    try:
        async with raw_socket(target, target.anon_key) as observer:
            assert (await observer.join(name, {**NO_PRESENCE, "private": False}))["status"] == "ok"
            await tracker.join(name, config={"private": False, "presence": {"key": "tracker"}}, presence=True)
            assert await tracker.call("track", topic=name, payload={"online": True}) == "ok"
            diff = await observer.until("presence_diff")
    finally:
        await tracker.close()
    assert list(diff["payload"]["joins"]) == ["tracker"]
    assert diff["payload"]["joins"]["tracker"]["metas"][0]["online"] is True


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (handle_info({:authorize_presence_diff, ...}):
# a private channel that did not enable presence has no presence read yet, so its diffs are dropped)
async def test_presence_diff_skips_a_private_subscriber_that_did_not_enable_presence(target: Target) -> None:
    name = f"conformance-{uuid.uuid4()}"
    tracker = await JsClient.start(target.http_base, target.service_key)
    try:
        async with raw_socket(target, target.service_key) as observer:
            assert (await observer.join(name, {**NO_PRESENCE, "private": True}))["status"] == "ok"
            await tracker.join(name, config={"presence": {"key": "tracker"}}, presence=True)
            assert await tracker.call("track", topic=name, payload={"online": True}) == "ok"
            # A later broadcast is the marker: everything sent before it on this topic has arrived by then.
            assert await tracker.call("send", topic=name, event="marker", payload={}) == "ok"
            seen = [await observer.until_any(("presence_diff", "broadcast"))]
    finally:
        await tracker.close()
    assert [m["event"] for m in seen] == ["broadcast"]
