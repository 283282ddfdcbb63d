"""Refusals, token errors and expiry as Supabase Realtime tells them, through the official clients (and a raw
socket where only the wire shows the detail: the handshake's HTTP answer, a reply clients never ask for)."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import jwt
import pytest
import websockets
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from realtime_bridge.tests.clients import JsClient
from realtime_bridge.tests.conformance.conftest import Target
from realtime_bridge.tests.conformance.wire import handshake_refusal, raw_socket

pytestmark = pytest.mark.slow

EXPIRED_AGE = re.compile(r"Token has expired \d+ seconds ago")


def forged_key() -> str:
    """A well-formed token signed with a secret no project has."""
    now = int(time.time())
    claims = {"role": "service_role", "iat": now, "exp": now + 600}
    return jwt.encode(claims, "not-the-project-secret-" * 2, algorithm="HS256")


def topic() -> str:
    return f"conformance-{uuid.uuid4()}"


# supabase/realtime: lib/realtime_web/channels/user_socket.ex (connect/3 and handle_error/2: 401 + {"error": ...})
async def test_a_refused_handshake_is_a_401_with_the_reason_as_json(target: Target) -> None:
    expired = await handshake_refusal(target, target.user_key(ttl=-60))
    malformed = await handshake_refusal(target, "not.a.jwt")
    forged = await handshake_refusal(target, forged_key())
    assert expired == (401, "application/json", {"error": "Token has expired"})
    assert malformed == (401, "application/json", {"error": "The token provided is not a valid JWT"})
    assert forged == (401, "application/json", {"error": "Failed to validate JWT signature"})


# supabase/realtime: Phoenix.Transports.WebSocket and Phoenix.Socket (which RealtimeWeb.Socket wraps): the vsn is
# negotiated before connect/3 reads the key, and an unknown one is answered 403 with no body
async def test_an_unknown_vsn_is_a_403_without_a_body_whatever_the_key(target: Target) -> None:
    status, _, body = await handshake_refusal(target, "not.a.jwt", vsn="3.0.0")
    assert (status, body) == (403, None)


# supabase/realtime: lib/realtime_web/channels/user_socket.ex (the Python client sees the HTTP status)
async def test_the_python_client_is_refused_with_401(target: Target) -> None:
    client = AsyncRealtimeClient(target.http_base, token=forged_key(), auto_reconnect=False)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await client.connect()
    assert refused.value.response.status_code == 401


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (join/3, confirm_token/1) and
# lib/realtime_web/channels/auth/channels_authorization.ex (the age of an expired token)
async def test_a_join_with_an_expired_token_is_refused_with_its_age(target: Target) -> None:
    client = await JsClient.start(target.http_base, target.anon_key)
    try:
        await client.call("set_auth", token=target.user_key(ttl=-30))
        status = await client.join(topic(), config={"private": False})
    finally:
        await client.close()
    assert status["status"] == "CHANNEL_ERROR"
    assert re.fullmatch(r"InvalidJWTToken: " + EXPIRED_AGE.pattern, status["error"]), status


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (join/3: {:error, :token_malformed, msg})
async def test_a_join_with_a_malformed_token_is_refused_as_not_a_valid_jwt(target: Target) -> None:
    client = AsyncRealtimeClient(target.http_base, token=target.anon_key, auto_reconnect=False)
    await client.connect()
    try:
        await client.set_auth("not.a.jwt")
        states: list[tuple[RealtimeSubscribeStates, Exception | None]] = []
        public: Any = {"config": {"private": False}}  # a RealtimeChannelOptions TypedDict
        await client.channel(topic(), public).subscribe(lambda s, e: states.append((s, e)))
    finally:
        await client.close()
    state, error = states[0]
    assert state == RealtimeSubscribeStates.CHANNEL_ERROR
    assert "MalformedJWT: The token provided is not a valid JWT" in str(error)


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (handle_in("access_token"): shutdown_response)
async def test_a_refreshed_expired_token_ends_the_channel_with_a_system_error(target: Target) -> None:
    name = topic()
    client = await JsClient.start(target.http_base, target.anon_key)
    try:
        assert (await client.join(name, config={"private": False}))["status"] == "SUBSCRIBED"
        await client.call("set_auth", token=target.user_key(ttl=-30))
        system = await client.expect(lambda e: e["type"] == "system" and e["payload"]["status"] == "error")
        closed = await client.expect(lambda e: e["type"] == "status" and e["topic"] == name)
    finally:
        await client.close()
    assert EXPIRED_AGE.fullmatch(system["payload"]["message"]), system
    assert system["payload"]["extension"] == "system"
    assert closed["status"] == "CLOSED"


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (handle_info(:confirm_token): a timer armed
# at the join for the token's remaining life ends the channel when it runs out, with no client action)
async def test_a_channel_ends_by_itself_when_its_token_expires(target: Target) -> None:
    name = topic()
    client = await JsClient.start(target.http_base, target.anon_key)
    try:
        await client.call("set_auth", token=target.user_key(ttl=4))
        assert (await client.join(name, config={"private": False}))["status"] == "SUBSCRIBED"
        system = await client.expect(lambda e: e["type"] == "system" and e["payload"]["status"] == "error", 20)
        closed = await client.expect(lambda e: e["type"] == "status" and e["topic"] == name)
    finally:
        await client.close()
    assert EXPIRED_AGE.fullmatch(system["payload"]["message"]), system
    assert closed["status"] == "CLOSED"


# supabase/realtime: Phoenix.Socket (handle_in/4 for a topic with no channel), which RealtimeWeb.Socket wraps:
# every push but phx_join/phx_leave to a topic not joined, access_token included, gets "unmatched topic"
async def test_access_token_on_a_topic_not_joined_gets_unmatched_topic(target: Target) -> None:
    async with raw_socket(target, target.anon_key) as socket:
        ref = await socket.push(f"realtime:{topic()}", "access_token", {"access_token": target.anon_key})
        reply = await socket.until("phx_reply")
    assert reply["ref"] == ref
    assert reply["payload"] == {"status": "error", "response": {"reason": "unmatched topic"}}


# supabase/realtime: lib/realtime_web/channels/realtime_channel.ex (only_private?/2 passes a public join when the
# project allows public access; maybe_assign_policies/3 asks no policy for it) — the anon key may join and talk
async def test_a_public_channel_is_open_to_the_anon_key(target: Target) -> None:
    name = topic()
    client = await JsClient.start(target.http_base, target.anon_key)
    try:
        joined = await client.join(name, config={"private": False, "broadcast": {"self": True, "ack": True}})
        answer = await client.call("send", topic=name, event="hello", payload={"n": 1})
        heard = await client.expect(lambda e: e["type"] == "broadcast" and e["event"] == "hello")
    finally:
        await client.close()
    assert joined["status"] == "SUBSCRIBED", joined
    assert (answer, heard["payload"]) == ("ok", {"n": 1})
