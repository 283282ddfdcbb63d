"""Limits of the ``supabase`` profile as Supabase enforces them, through realtime-js.

The first cases use a project's default numbers and run against any target. The rates (events and joins a
second) are tenant-wide averages over 5 s ticks: tripping the defaults would disturb every other case on a
shared server, so those cases start their own embedded server with a low number (the same counting, a
smaller limit) and are skipped against a hosted project.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from realtime_bridge import limits
from realtime_bridge.testing import RealtimeServer, service_token
from realtime_bridge.tests.clients import Event, JsClient
from realtime_bridge.tests.conformance.conftest import Target

pytestmark = pytest.mark.slow

OVERSIZE = 3_100_000  # over 3,000 KB (max_payload_size_in_kb 3000, plus Realtime's 500 bytes of padding)


def topic() -> str:
    return f"conformance-{uuid.uuid4()}"


def system_error(name: str, text: str) -> Callable[[Event], bool]:
    def matches(event: Event) -> bool:
        payload = event.get("payload") or {}
        return event["type"] == "system" and event["topic"] == name and payload.get("message") == text

    return matches


def status(name: str, value: str) -> Callable[[Event], bool]:
    return lambda e: e["type"] == "status" and e["topic"] == name and e["status"] == value


@contextlib.asynccontextmanager
async def js(target_base: str, key: str) -> AsyncIterator[JsClient]:
    client = await JsClient.start(target_base, key)
    try:
        yield client
    finally:
        await client.close()


@contextlib.asynccontextmanager
async def pair(target_base: str, key: str) -> AsyncIterator[tuple[JsClient, JsClient]]:
    async with js(target_base, key) as one, js(target_base, key) as two:
        yield one, two


@contextlib.asynccontextmanager
async def low_limit_server(**env: str) -> AsyncIterator[RealtimeServer]:
    """An embedded endpoint of its own with the supabase profile and one number lowered; one process without
    Redis, so its tenant counters are its own (the shared server's traffic is not counted in)."""
    with tempfile.TemporaryDirectory(prefix="velocity-rt-limits-") as var_dir:
        server = RealtimeServer(Path(var_dir), REALTIME_LIMITS_PROFILE="supabase", REDIS_URL="", **env)
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)


# supabase/realtime: lib/realtime_web/channels/realtime_channel/presence_handler.ex (limit_client_presence_event:
# 5 calls per 30 s window) and realtime_channel.ex (handle_in "presence" → shutdown_response)
async def test_a_sixth_presence_message_in_thirty_seconds_shuts_the_channel(target: Target) -> None:
    name = topic()
    async with js(target.http_base, target.service_key) as client:
        joined = await client.join(name, config={"private": False, "presence": {"key": "me"}}, presence=True)
        assert joined["status"] == "SUBSCRIBED", joined
        answers = [await client.call("track", topic=name, payload={"n": n}) for n in range(5)]
        await client.command("track", topic=name, payload={"n": 5})
        system = await client.expect(system_error(name, limits.CLIENT_PRESENCE))
        closed = await client.expect(status(name, "CLOSED"))
    assert answers == ["ok"] * 5
    assert system["payload"]["status"] == "error"
    assert closed["status"] == "CLOSED"


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (limit_channels, max_channels_per_client 100)
async def test_the_hundred_and_first_channel_of_a_socket_is_refused(target: Target) -> None:
    async with js(target.http_base, target.service_key) as client:
        for index in range(100):
            joined = await client.join(f"{topic()}-{index}", config={"private": False})
            assert joined["status"] == "SUBSCRIBED", (index, joined)
        refused = await client.join(topic(), config={"private": False})
    assert refused["status"] == "CHANNEL_ERROR"
    assert limits.TOO_MANY_CHANNELS in refused["error"]


# supabase/realtime: lib/realtime_web/channels/realtime_channel/broadcast_handler.ex (validate_payload_size:
# an error reply with ack, nothing delivered) and lib/realtime/tenants.ex (validate_payload_size)
async def test_an_oversized_broadcast_is_refused_to_an_acking_sender_and_reaches_nobody(target: Target) -> None:
    name = topic()
    async with js(target.http_base, target.service_key) as sender, js(target.http_base, target.service_key) as other:
        await other.join(name, config={"private": False})
        await sender.join(name, config={"private": False, "broadcast": {"ack": True}})
        big = await sender.call("send", topic=name, event="big", payload={"text": "x" * OVERSIZE}, timeout=20)
        small = await sender.call("send", topic=name, event="small", payload={"n": 1})
        heard = await other.expect(lambda e: e["type"] == "broadcast" and e["topic"] == name)
    assert (big, small) == ("error", "ok")
    assert heard["event"] == "small"  # the oversized one never arrived before it


# supabase/realtime: lib/realtime_web/channels/realtime_channel/presence_handler.ex (track → validate_payload_size)
# and realtime_channel.ex (:payload_size_exceeded → shutdown_response "Track message size exceeded")
async def test_an_oversized_track_shuts_the_channel(target: Target) -> None:
    name = topic()
    async with js(target.http_base, target.service_key) as client:
        await client.join(name, config={"private": False, "presence": {"key": "me"}}, presence=True)
        await client.command("track", topic=name, payload={"text": "x" * OVERSIZE})
        system = await client.expect(system_error(name, limits.TRACK_TOO_BIG), timeout=20)
        await client.expect(status(name, "CLOSED"))
    assert system["payload"]["status"] == "error"


async def _until_shut(sender: JsClient, receiver: JsClient, name: str) -> Event:
    """Keep sending one broadcast every half second until the receiver's channel is shut (the next tick)."""
    deadline = time.monotonic() + 3 * limits.TICK_SECONDS
    while time.monotonic() < deadline:
        await sender.call("send", topic=name, event="more", payload={})
        with contextlib.suppress(TimeoutError):
            return await receiver.expect(system_error(name, limits.TOO_MANY_MESSAGES), timeout=0.5)
    raise AssertionError("the receiving channel was never shut")


# supabase/realtime: lib/realtime_web/channels/realtime_channel/message_dispatcher.ex (:update_rate_counter per
# delivery), realtime_channel.ex (handle_info :update_rate_counter → "Too many messages per second"),
# lib/realtime/rate_counter/rate_counter.ex (5 s ticks, average over the buckets) and lib/realtime/tenants.ex
async def test_over_the_projects_events_a_second_receivers_are_shut_and_the_sender_is_not(target: Target) -> None:
    if target.hosted:
        pytest.skip("trips the project's tenant-wide limit: embedded endpoint with a low limit only")
    name = topic()
    async with (
        low_limit_server(REALTIME_MAX_EVENTS_PER_SECOND="2") as server,
        pair(server.http_base, service_token()) as (sender, receiver),
    ):
        await receiver.join(name, config={"private": False})
        await sender.join(name, config={"private": False})
        for n in range(40):  # 40 sent + 40 delivered within a tick or two: over 2 a second
            await sender.call("send", topic=name, event="burst", payload={"n": n})
        system = await _until_shut(sender, receiver, name)
        closed = await receiver.expect(status(name, "CLOSED"))
        still = await sender.call("send", topic=name, event="after", payload={})
        sender_events = [e for e in sender.events if e["type"] in ("system", "status") and e["topic"] == name]
    assert system["payload"]["status"] == "error"
    assert closed["status"] == "CLOSED"
    assert still == "ok"
    assert sender_events == []  # the sender's channel was never shut: it received nothing


async def _join_until_refused(client: JsClient) -> Event:
    deadline = time.monotonic() + 3 * limits.TICK_SECONDS
    while time.monotonic() < deadline:
        answer = await client.join(topic(), config={"private": False})
        if answer["status"] != "SUBSCRIBED":
            return answer
        await asyncio.sleep(0.3)
    raise AssertionError("no join was refused")


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (limit_joins; :too_many_joins replies
# "ClientJoinRateLimitReached: Too many joins per second" and disconnects the socket) and lib/realtime/tenants.ex
# (joins_per_second_rate: 5 s ticks)
async def test_over_the_projects_joins_a_second_a_join_is_refused_and_the_socket_closed(target: Target) -> None:
    if target.hosted:
        pytest.skip("trips the project's tenant-wide limit: embedded endpoint with a low limit only")
    async with (
        low_limit_server(REALTIME_MAX_JOINS_PER_SECOND="1") as server,
        js(server.http_base, service_token()) as c,
    ):
        first = topic()
        await c.join(first, config={"private": False})
        for _ in range(19):  # 20 joins within a tick or two: over 1 a second
            await c.join(topic(), config={"private": False})
        refused = await _join_until_refused(c)
        dropped = await c.expect(
            lambda e: e["type"] == "status" and e["topic"] == first and e["status"] != "SUBSCRIBED"
        )
    assert refused["status"] == "CHANNEL_ERROR"
    assert limits.TOO_MANY_JOINS in refused["error"]
    assert dropped["status"] == "CHANNEL_ERROR"  # the socket was closed under the channels already joined


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (limit_max_users:
# "ConnectionRateLimitReached: Too many connected users"; a socket already counted may join more)
async def test_past_the_concurrent_users_a_new_sockets_join_is_refused(target: Target) -> None:
    if target.hosted:
        pytest.skip("200 concurrent users on a hosted project: embedded endpoint with a low limit only")
    async with (
        low_limit_server(REALTIME_MAX_CONCURRENT_USERS="1") as server,
        pair(server.http_base, service_token()) as (one, two),
    ):
        assert (await one.join(topic(), config={"private": False}))["status"] == "SUBSCRIBED"
        again = await one.join(topic(), config={"private": False})
        refused = await two.join(topic(), config={"private": False})
    assert again["status"] == "SUBSCRIBED"
    assert refused["status"] == "CHANNEL_ERROR"
    assert limits.TOO_MANY_USERS in refused["error"]


async def _track_until_shut(client: JsClient, name: str) -> Event:
    deadline = time.monotonic() + 3 * limits.TICK_SECONDS
    n = 0
    while time.monotonic() < deadline:
        n += 1
        await client.command("track", topic=name, payload={"n": n})
        with contextlib.suppress(TimeoutError):
            return await client.expect(system_error(name, limits.TOO_MANY_PRESENCE), timeout=0.5)
    raise AssertionError("no track was refused")


# supabase/realtime: lib/realtime_web/channels/realtime_channel/presence_handler.ex (limit_presence_event: the
# tenant's presence events average over max_presence_events_per_second → :rate_limit_exceeded),
# realtime_channel.ex ("Too many presence messages per second") and message_dispatcher.ex (presence_diff
# deliveries counted)
async def test_over_the_projects_presence_events_a_second_a_track_shuts_the_channel(target: Target) -> None:
    if target.hosted:
        pytest.skip("trips the project's tenant-wide limit: embedded endpoint with a low limit only")
    name = topic()
    env = {"REALTIME_MAX_PRESENCE_EVENTS_PER_SECOND": "1", "REALTIME_CLIENT_PRESENCE_MAX_CALLS": "1000"}
    async with low_limit_server(**env) as server, pair(server.http_base, service_token()) as (one, two):
        for client in (one, two):
            await client.join(name, config={"private": False, "presence": {"key": str(uuid.uuid4())}}, presence=True)
        for n in range(10):  # 20 tracks, each diff delivered to both: 40 presence events, over 1 a second
            await one.call("track", topic=name, payload={"n": n})
            await two.call("track", topic=name, payload={"n": n})
        system = await _track_until_shut(one, name)
        closed = await one.expect(status(name, "CLOSED"))
    assert system["payload"]["status"] == "error"
    assert closed["status"] == "CLOSED"
