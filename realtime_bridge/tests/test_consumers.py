"""The endpoint through the real ASGI application (WebsocketCommunicator): refusals, limits, ownership."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from realtime_bridge import limits
from realtime_bridge.hub import get_hub
from realtime_bridge.testing import service_token
from velocity.auth import issue_token

Connect = Callable[..., Any]

# Channels closes stale database connections around every consumer event, so even tests that
# never query need database access allowed.
pytestmark = pytest.mark.django_db


async def test_it_refuses_a_forged_apikey_at_the_handshake(connect):
    forged = service_token()[:-3] + "abc"
    assert await connect(forged) is None


async def test_it_refuses_an_unknown_vsn_and_an_expired_apikey(connect):
    assert await connect(service_token(), vsn="3.0.0") is None
    assert await connect(issue_token(sub=None, role="service_role", ttl=-60)) is None


async def test_the_x_api_key_header_is_accepted_like_the_query_parameter(connect):
    socket = await connect("", headers=[(b"x-api-key", service_token().encode())])
    assert socket is not None


async def test_a_join_echoes_postgres_changes_bindings_in_order_with_integer_ids(connect):
    socket = await connect(service_token())
    bindings = [
        {"event": "UPDATE", "schema": "public", "table": "preview_sessions", "filter": "status=eq.active"},
        {"event": "*", "schema": "public"},
    ]
    reply = await socket.join("room-1", {"postgres_changes": bindings})
    echoed = reply["payload"]["response"]["postgres_changes"]
    assert [{k: v for k, v in b.items() if k != "id"} for b in echoed] == bindings
    assert all(isinstance(b["id"], int) for b in echoed)
    assert (await socket.receive_event("system"))["payload"]["message"] == "Subscribed to PostgreSQL"


async def test_an_empty_topic_name_is_refused(connect):
    socket = await connect(service_token())
    reply = await socket.join("")
    reason = "TopicNameRequired: You must provide a topic name"
    assert reply["payload"] == {"status": "error", "response": {"reason": reason}}


async def test_pushes_on_a_topic_not_joined_get_unmatched_topic(connect):
    socket = await connect(service_token())
    await socket.push("realtime:nowhere", "broadcast", {"type": "broadcast", "event": "e", "payload": {}})
    reply = await socket.receive()
    assert reply["payload"] == {"status": "error", "response": {"reason": "unmatched topic"}}


async def test_leave_replies_then_closes_with_the_join_ref(connect):
    socket = await connect(service_token())
    await socket.join("room-leave")
    ref = await socket.push("realtime:room-leave", "phx_leave", {}, join_ref="1")
    assert (await socket.receive())["ref"] == ref
    close = await socket.receive()
    assert (close["event"], close["ref"]) == ("phx_close", "1")


async def test_private_channels_on_unclaimed_topics_are_for_the_service_role_only(connect):
    socket = await connect(issue_token(sub=uuid.uuid4()))
    reply = await socket.join("room-1", {"private": True})
    assert reply["payload"]["status"] == "error"
    assert reply["payload"]["response"]["reason"].startswith("Unauthorized")


async def test_a_public_channel_on_an_unclaimed_topic_is_open_to_the_anon_key(connect):
    socket = await connect(issue_token(sub=None, role="anon"))
    assert (await socket.join("lobby", {"private": False}))["payload"]["status"] == "ok"
    await socket.push("realtime:lobby", "broadcast", {"type": "broadcast", "event": "hi", "payload": {}}, "1")
    await socket.push("realtime:lobby", "presence", {"event": "track", "payload": {"a": 1}}, "1")
    assert (await socket.receive_event("phx_reply"))["payload"]["status"] == "ok"  # the track, written


async def test_public_channels_switched_off_answer_private_only_for_every_topic(connect, settings):
    settings.REALTIME_PUBLIC_CHANNELS = False
    socket = await connect(service_token())
    reply = await socket.join("lobby", {"private": False})
    reason = "PrivateOnly: This project only allows private channels"
    assert reply["payload"] == {"status": "error", "response": {"reason": reason}}


async def test_a_public_join_to_a_project_topic_is_refused_as_on_a_private_only_supabase_project(connect):
    socket = await connect(service_token())
    reply = await socket.join("project:p1", {"private": False})
    reason = "PrivateOnly: This project only allows private channels"
    assert reply["payload"] == {"status": "error", "response": {"reason": reason}}
    assert (await socket.join("project:p1", {"private": True}))["payload"]["status"] == "ok"


async def test_the_join_token_overrides_the_apikey(connect):
    socket = await connect(issue_token(sub=None, role="anon"))
    assert (await socket.join("project:p9", {"private": True}))["payload"]["status"] == "error"
    reply = await socket.join("project:p9", {"private": True}, access_token=service_token())
    assert reply["payload"]["status"] == "ok"


async def test_a_refreshed_expired_token_ends_the_channel_with_a_system_error(connect):
    socket = await connect(service_token())
    await socket.join("project:p1", {"private": True})
    expired = issue_token(sub=None, role="service_role", ttl=-60)
    await socket.push("realtime:project:p1", "access_token", {"access_token": expired}, join_ref="1")
    system = await socket.receive_event("system")
    assert system["payload"]["status"] == "error"
    assert (await socket.receive())["event"] == "phx_close"


async def test_too_many_channels_on_one_socket_are_refused(connect, settings):
    settings.REALTIME_MAX_CHANNELS_PER_SOCKET = 1
    socket = await connect(service_token())
    assert (await socket.join("a"))["payload"]["status"] == "ok"
    reply = await socket.join("b")
    assert reply["payload"]["response"]["reason"] == "ChannelRateLimitReached: Too many channels"


async def test_an_oversized_payload_is_refused_with_an_ack(connect, settings):
    settings.REALTIME_MAX_PAYLOAD_BYTES = 20
    socket = await connect(service_token())
    await socket.join("big", {"broadcast": {"ack": True}})
    payload = {"type": "broadcast", "event": "e", "payload": {"text": "x" * 50}}
    await socket.push("realtime:big", "broadcast", payload, join_ref="1")
    reply = await socket.receive()
    assert reply["payload"] == {"status": "error", "response": {"reason": "Payload size exceeded"}}


async def test_over_the_tenant_rate_the_receiving_channel_is_closed_and_the_sender_kept(connect, settings):
    """Supabase counts a broadcast once sent and once per receiver, per project; the receivers' channels are
    shut once a tick's average is over (the tick is driven here; conformance/test_limits.py waits for it)."""
    settings.REALTIME_MAX_EVENTS_PER_SECOND = 2
    hub = get_hub()
    hub.limits = limits.tenant_limits()
    sender, receiver = await connect(service_token()), await connect(service_token())
    await sender.join("busy")
    await receiver.join("busy")
    message = {"type": "broadcast", "event": "e", "payload": {}}
    for _ in range(5):
        await sender.push("realtime:busy", "broadcast", message, "1")
        await receiver.receive_event("broadcast")
    await hub.limits.tick(time.time() + limits.TICK_SECONDS)  # 10 events in 5 s: 2 a second
    await sender.push("realtime:busy", "broadcast", message, "1")
    await receiver.receive_event("broadcast")
    system = await receiver.receive_event("system")
    assert system["payload"]["message"] == "Too many messages per second"
    assert (await receiver.receive())["event"] == "phx_close"
    assert "realtime:busy" in next(c for c in hub.connections if c.channels).channels


async def test_an_idle_socket_is_closed(connect, settings):
    settings.REALTIME_IDLE_TIMEOUT = 0.3
    socket = await connect(service_token())
    output = await socket.communicator.receive_output(timeout=3)
    assert output["type"] == "websocket.close"


async def test_a_v2_binary_broadcast_reaches_v1_and_v2_sockets(connect):
    sender, v2 = await connect(service_token(), "2.0.0"), await connect(service_token(), "2.0.0")
    v1 = await connect(service_token())
    await v1.join("mixed")
    for socket in (sender, v2):
        await socket.communicator.send_to(text_data='["1","1","realtime:mixed","phx_join",{"config":{}}]')
        assert json.loads(await socket.communicator.receive_from())[3] == "phx_reply"
    kind3 = bytes.fromhex("0301010e0600013131") + b"realtime:mixedcursor" + b'{"x":1}'
    await sender.communicator.send_to(bytes_data=kind3)
    assert (await v1.receive())["payload"] == {"type": "broadcast", "event": "cursor", "payload": {"x": 1}}
    frame = await v2.communicator.receive_output(timeout=2)
    assert frame["bytes"] == bytes.fromhex("040e060001") + b"realtime:mixedcursor" + b'{"x":1}'


async def test_a_malformed_frame_is_dropped_and_the_socket_stays_open(connect):
    socket = await connect(service_token())
    await socket.communicator.send_to(text_data="not json")
    await socket.communicator.send_to(text_data='{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7"}')
    assert (await socket.receive())["ref"] == "7"


async def test_a_join_without_its_own_token_is_refused_once_the_apikey_expired(connect, time_machine):
    time_machine.move_to(datetime.now(UTC))
    socket = await connect(issue_token(sub=None, role="service_role", ttl=3))
    time_machine.shift(4)  # past the key's expiry, on the clock the token check reads
    reply = await socket.join("late")
    assert re.fullmatch(r"InvalidJWTToken: Token has expired \d+ seconds ago", reply["payload"]["response"]["reason"])


async def test_a_channel_ends_at_its_tokens_expiry_without_any_client_push(connect):
    socket = await connect(service_token())
    await socket.join("project:p1", {"private": True}, access_token=issue_token(sub=None, role="service_role", ttl=3))
    system = await socket.receive_event("system", timeout=10)
    assert re.fullmatch(r"Token has expired \d+ seconds ago", system["payload"]["message"])
    assert (await socket.receive())["event"] == "phx_close"


async def test_access_token_on_a_topic_not_joined_gets_unmatched_topic(connect):
    socket = await connect(service_token())
    await socket.push("realtime:nowhere", "access_token", {"access_token": service_token()})
    reply = await socket.receive()
    assert reply["payload"] == {"status": "error", "response": {"reason": "unmatched topic"}}


async def test_broadcasts_still_reach_local_sockets_when_redis_is_down(connect, settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]}}
    }
    sender, receiver = await connect(service_token()), await connect(service_token())
    for socket in (sender, receiver):
        assert (await socket.join("outage"))["payload"]["status"] == "ok"
    await sender.push("realtime:outage", "broadcast", {"type": "broadcast", "event": "e", "payload": {"n": 1}}, "1")
    assert (await receiver.receive_event("broadcast"))["payload"]["payload"] == {"n": 1}
