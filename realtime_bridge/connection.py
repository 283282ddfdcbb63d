"""One Realtime socket's state and its Phoenix protocol handling (no ORM, no consumer)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings

from realtime_bridge import metrics, policies, postgres_changes, publish
from realtime_bridge.events import TOPIC_PREFIX
from realtime_bridge.hub import Hub, topic_group
from realtime_bridge.protocol import (
    BinaryBroadcast,
    BroadcastFrames,
    Message,
    ProtocolError,
    Serializer,
    dumps,
    reply,
)
from realtime_bridge.wire import DirectWriter
from velocity.auth import Claims, TokenError, realtime_audiences, verify_token

logger = logging.getLogger(__name__)

# The ack error for a broadcast that cannot be delivered as sent (not a map, or not Unicode).
MALFORMED_REASON = "Malformed message"

# (claims, topic without `realtime:`, "read" | "write") -> allowed
Authorizer = Callable[[Claims, str, str], Awaitable[bool]]
PRIVATE_ONLY = "PrivateOnly: This project only allows private channels"


class Transport(Protocol):
    async def send_frame(self, frame: str | bytes) -> None: ...

    async def close_socket(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int
    max_events_per_second: int
    max_channels: int
    idle_timeout: float
    join_error_delay: float

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            max_payload_bytes=settings.REALTIME_MAX_PAYLOAD_BYTES,
            max_events_per_second=settings.REALTIME_MAX_EVENTS_PER_SECOND,
            max_channels=settings.REALTIME_MAX_CHANNELS_PER_SOCKET,
            idle_timeout=settings.REALTIME_IDLE_TIMEOUT,
            join_error_delay=settings.REALTIME_JOIN_ERROR_DELAY,
        )


def _flag(value: Any, default: bool) -> bool:
    """Realtime accepts booleans and the strings "true"/"false" in any case."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return default


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def binding_id(binding: dict[str, Any]) -> int:
    """A stable integer id per binding (Realtime uses :erlang.phash2; clients only need an int)."""
    return zlib.crc32(dumps(binding).encode("utf-8")) & 0x7FFFFFF


@dataclass(frozen=True, slots=True)
class JoinConfig:
    self_broadcast: bool = False
    ack: bool = False
    presence_key: str = ""
    presence_enabled: bool = False
    private: bool = False
    bindings: tuple[dict[str, Any], ...] = ()

    @classmethod
    def parse(cls, payload: Any) -> JoinConfig:
        config = payload.get("config") if isinstance(payload, dict) else None
        if not isinstance(config, dict):
            return cls()
        broadcast, presence = _map(config.get("broadcast")), _map(config.get("presence"))
        raw_bindings = config.get("postgres_changes")
        if not isinstance(raw_bindings, list):
            raw_bindings = []
        # Every binding is echoed in order: clients compare the reply with what they sent.
        bindings = tuple({**b, "id": binding_id(b)} for b in raw_bindings if isinstance(b, dict))
        return cls(
            self_broadcast=_flag(broadcast.get("self"), False),
            ack=_flag(broadcast.get("ack"), False),
            presence_key=str(presence.get("key") or ""),
            presence_enabled=_flag(presence.get("enabled"), False),
            private=_flag(config.get("private"), False),
            bindings=bindings,
        )


@dataclass(eq=False)
class ChannelState:
    """One joined topic on one socket."""

    conn: Connection
    topic: str
    join_ref: str | None
    config: JoinConfig
    claims: Claims
    presence_key: str
    presence_enabled: bool
    group: str = ""
    key: str = ""
    # Write access, asked at the first broadcast or track and kept until the token or the access changes.
    can_write: bool | None = None

    def __post_init__(self) -> None:
        self.group = topic_group(self.topic, private=self.config.private)
        self.key = f"{self.conn.id}:{self.topic}"

    @property
    def sub_topic(self) -> str:
        return self.topic.removeprefix(TOPIC_PREFIX)

    @property
    def self_broadcast(self) -> bool:
        return self.config.self_broadcast


@dataclass(eq=False)
class Connection:
    transport: Transport
    serializer: Serializer
    claims: Claims
    apikey: str
    hub: Hub
    authorize: Authorizer
    limits: Limits
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    channels: dict[str, ChannelState] = field(default_factory=dict)
    last_seen: float = field(default_factory=time.monotonic)
    _window: int = 0
    _window_count: int = 0
    # Set by the consumer when the server lets the hub write pre-framed broadcasts to the socket (wire.py).
    writer: DirectWriter | None = None

    @property
    def vsn(self) -> str:
        return self.serializer.vsn

    # --- I/O -------------------------------------------------------------------------------

    async def send_frame(self, frame: str | bytes) -> None:
        try:
            await self.transport.send_frame(frame)
        except Exception:  # a closing socket must not break the fan-out to the others
            logger.debug("realtime send to a closing socket dropped", extra={"conn": self.id})

    async def overflowed(self) -> None:
        """Too many unsent bytes (a reader that stopped reading): drop the socket, as wire.py documents.

        Its frames cannot reach it in time anyway; the client reconnects and rejoins.
        """
        metrics.slow_consumer_dropped()
        logger.warning("realtime socket dropped: its reader fell behind", extra={"conn": self.id})
        if self.writer is not None:
            self.writer.abort()

    async def push(self, message: Message) -> None:
        await self.send_frame(self.serializer.encode(message))

    async def receive(self, text: str | None, data: bytes | None) -> None:
        self.last_seen = time.monotonic()
        try:
            message = self.serializer.decode(text, data)
        except ProtocolError as exc:
            logger.info("realtime malformed frame dropped", extra={"reason": str(exc)})
            if exc.request is not None:
                await self._refuse_malformed(exc.request)
            return
        await self.handle(message)

    async def _refuse_malformed(self, envelope: Message) -> None:
        """A broadcast whose payload was unreadable still gets its ack, as an error, when it asked for one."""
        state = self.channels.get(envelope.topic)
        if envelope.event == "broadcast" and state is not None and state.config.ack:
            await self.push(reply(envelope, "error", {"reason": MALFORMED_REASON}))

    async def handle(self, message: Message) -> None:
        if message.event == "heartbeat" and message.topic == "phoenix":
            await self.push(reply(message))
        elif message.event == "phx_join":
            await self.join(message)
        elif message.topic not in self.channels:
            await self._unmatched(message)
        else:
            await self._on_channel(self.channels[message.topic], message)

    async def _unmatched(self, message: Message) -> None:
        if message.event == "phx_leave":
            await self.push(reply(message))
        elif message.event != "access_token":
            await self.push(reply(message, "error", {"reason": "unmatched topic"}))

    async def _on_channel(self, state: ChannelState, message: Message) -> None:
        handler = {
            "phx_leave": self.leave,
            "broadcast": self.broadcast,
            "presence": self.presence,
            "access_token": self.refresh_token,
        }.get(message.event)
        if handler is not None:
            await handler(state, message)

    # --- join / leave ----------------------------------------------------------------------

    async def join(self, message: Message) -> None:
        if message.topic in self.channels:
            await self.close_channel(self.channels[message.topic])
        config = JoinConfig.parse(message.payload)
        refusal = await self._join_refusal(message, config)
        if isinstance(refusal, str):
            metrics.join_refused()
            logger.info("realtime join refused", extra={"topic": message.topic, "reason": refusal})
            await asyncio.sleep(self.limits.join_error_delay)
            await self.push(reply(message, "error", {"reason": refusal}))
            return
        await self._accept_join(message, config, refusal)

    async def _join_refusal(self, message: Message, config: JoinConfig) -> str | Claims:
        """The refusal reason, or the claims the channel runs with."""
        sub_topic = message.topic.removeprefix(TOPIC_PREFIX)
        if not message.topic.startswith(TOPIC_PREFIX) or not sub_topic:
            return "TopicNameRequired: You must provide a topic name"
        if len(self.channels) >= self.limits.max_channels:
            return "ChannelRateLimitReached: Too many channels"
        if policies.private_only(sub_topic) and not config.private:
            return PRIVATE_ONLY
        try:
            claims = self._join_claims(message.payload)
        except TokenError as exc:
            return f"{_join_error_code(exc.code)}: {exc.message}"
        if not await self.authorize(claims, sub_topic, policies.READ):
            return f"Unauthorized: You do not have permissions to read from this Channel topic: {sub_topic}"
        return claims

    def _join_claims(self, payload: Any) -> Claims:
        token = None
        if isinstance(payload, dict):
            token = payload.get("access_token") or payload.get("user_token")
        if isinstance(token, str) and token and not token.startswith("sb_"):
            return verify_token(token, audiences=realtime_audiences())
        if self.claims.exp <= time.time():
            raise TokenError("auth.expired", "the token has expired")
        return self.claims

    async def _accept_join(self, message: Message, config: JoinConfig, claims: Claims) -> None:
        state = ChannelState(
            conn=self,
            topic=message.topic,
            join_ref=message.join_ref or message.ref,
            config=config,
            claims=claims,
            presence_key=config.presence_key or str(uuid.uuid4()),
            presence_enabled=config.presence_enabled,
        )
        postgres_changes.subscribe(state)
        self.channels[state.topic] = state
        await self.hub.subscribe(state)
        metrics.joined()
        response = {"postgres_changes": list(config.bindings)}
        await self.push(reply(message, "ok", response))
        await self._after_join(state)

    async def _after_join(self, state: ChannelState) -> None:
        if state.presence_enabled:
            table = self.hub.presence_table(state.group)
            await self.push(self._server_push(state, "presence_state", table.state()))
        if state.config.bindings:
            status, text = postgres_changes.status(state)
            await self.push(self._system(state, status, text, "postgres_changes"))

    def _server_push(self, state: ChannelState, event: str, payload: Any) -> Message:
        return Message(topic=state.topic, event=event, payload=payload, join_ref=state.join_ref)

    def _system(self, state: ChannelState, status: str, text: str, extension: str = "system") -> Message:
        payload = {
            "channel": state.sub_topic,
            "extension": extension,
            "message": text,
            "status": status,
        }
        return self._server_push(state, "system", payload)

    async def leave(self, state: ChannelState, message: Message) -> None:
        await self.push(reply(message))
        await self.close_channel(state)

    async def close_channel(self, state: ChannelState) -> None:
        """Drop the channel and tell the client with `phx_close` (ref = join_ref = the join's)."""
        if self.channels.get(state.topic) is state:
            del self.channels[state.topic]
        await self.hub.unsubscribe(state)
        close = Message(state.topic, "phx_close", {}, ref=state.join_ref, join_ref=state.join_ref)
        await self.push(close)

    async def fail_channel(self, state: ChannelState, text: str) -> None:
        await self.push(self._system(state, "error", text))
        await self.close_channel(state)

    # --- broadcast -------------------------------------------------------------------------

    def _over_rate(self) -> bool:
        second = int(time.monotonic())
        if second != self._window:
            self._window, self._window_count = second, 0
        self._window_count += 1
        return self._window_count > self.limits.max_events_per_second

    async def may_write(self, state: ChannelState) -> bool:
        """Write access, asked once per channel and token (Realtime caches its RLS insert check so)."""
        if state.can_write is None:
            state.can_write = await self.authorize(state.claims, state.sub_topic, policies.WRITE)
        return state.can_write

    async def broadcast(self, state: ChannelState, message: Message) -> None:
        if self._over_rate():
            await self.fail_channel(state, "Too many messages per second")
            return
        if not await self.may_write(state):
            return  # Realtime drops a broadcast without write access, with no reply even when acked
        frames = _frames_for(state.topic, message.payload)
        if frames is None:
            await self._refuse_malformed(message)
            return
        if frames.size() > self.limits.max_payload_bytes:
            if state.config.ack:
                await self.push(reply(message, "error", {"reason": "Payload size exceeded"}))
            return
        await self.hub.broadcast(state.group, frames, sender=self.id)
        metrics.broadcast_seen(frames.event, frames.size())
        await publish.mirror_broadcast(state.sub_topic, frames.event, frames.json_payload)
        if state.config.ack:
            await self.push(reply(message))

    # --- presence --------------------------------------------------------------------------

    async def presence(self, state: ChannelState, message: Message) -> None:
        payload = message.payload if isinstance(message.payload, dict) else {}
        kind = str(payload.get("event", "")).lower()
        if self._over_rate():
            await self.fail_channel(state, "Too many messages per second")
        elif kind == "track" and not await self.may_write(state):
            reason = f"Unauthorized: You do not have permissions to write to this Channel topic: {state.sub_topic}"
            await self.push(reply(message, "error", {"reason": reason}))
        elif kind == "track":
            await self._track(state, message, payload.get("payload", {}))
        elif kind == "untrack":
            await self.hub.presence_untrack(state)
            await self.push(reply(message))

    async def _track(self, state: ChannelState, message: Message, meta: Any) -> None:
        if not isinstance(meta, dict):
            reason = {"reason": "Presence track payload must be a map"}
            await self.push(reply(message, "error", reason))
        elif len(dumps(meta)) > self.limits.max_payload_bytes:
            await self.push(reply(message, "error", {"reason": "Track message size exceeded"}))
        else:
            state.presence_enabled = True
            await self.push(reply(message))
            await self.hub.presence_track(state, meta)

    # --- tokens ----------------------------------------------------------------------------

    async def refresh_token(self, state: ChannelState, message: Message) -> None:
        """`access_token` gets no reply; a refused token ends the channel with a system error."""
        token = message.payload.get("access_token") if isinstance(message.payload, dict) else None
        if not isinstance(token, str) or not token or token.startswith("sb_"):
            return
        try:
            claims = verify_token(token, audiences=realtime_audiences())
        except TokenError as exc:
            await self.fail_channel(state, exc.message)
            return
        if not await self.authorize(claims, state.sub_topic, policies.READ):
            await self.fail_channel(state, _no_longer(state))
            return
        state.claims, state.can_write = claims, None

    async def recheck(self, state: ChannelState) -> bool:
        """Access to the topic changed: keep the channel if its token may still read it, else end it."""
        if self.channels.get(state.topic) is not state:
            return True
        if await self.authorize(state.claims, state.sub_topic, policies.READ):
            state.can_write = None
            return True
        logger.info("realtime channel lost access", extra={"conn": self.id, "topic": state.topic})
        await self.fail_channel(state, _no_longer(state))
        return False

    # --- housekeeping ----------------------------------------------------------------------

    async def sweep(self, now: float) -> None:
        """Close the socket when idle; end channels whose token expired."""
        if now - self.last_seen > self.limits.idle_timeout:
            logger.info("realtime idle socket closed", extra={"conn": self.id})
            await self.transport.close_socket()
            return
        wall = int(time.time())
        for state in list(self.channels.values()):
            if state.claims.exp <= wall:
                ago = wall - state.claims.exp
                await self.fail_channel(state, f"Token has expired {ago} seconds ago")

    async def close(self) -> None:
        for state in list(self.channels.values()):
            self.channels.pop(state.topic, None)
            await self.hub.unsubscribe(state)
        self.hub.unregister(self)


def _no_longer(state: ChannelState) -> str:
    return f"You no longer have permission to read from this Channel topic: {state.sub_topic}"


def _join_error_code(code: str) -> str:
    """Realtime's join error codes for our token refusals."""
    return {
        "auth.malformed": "MalformedJWT",
        "auth.bad_signature": "JwtSignatureError",
        "auth.missing_claim": "InvalidJWTToken",
    }.get(code, "InvalidJWTToken")


def _frames_for(topic: str, payload: Any) -> BroadcastFrames | None:
    """The fan-out frames of a client broadcast, or None for a malformed one (dropped)."""
    if isinstance(payload, BinaryBroadcast):
        # Kind 3 metadata carries client-side options (persist), not receiver metadata.
        body = BinaryBroadcast(payload.event, payload.data, payload.encoding)
        try:
            return BroadcastFrames.from_binary(topic, body)
        except ProtocolError:
            return None
    if isinstance(payload, dict) and isinstance(payload.get("event"), str):
        return BroadcastFrames(topic, payload, None)
    return None
