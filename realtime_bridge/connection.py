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

from realtime_bridge import limits, metrics, policies, postgres_changes, publish, token_refusals
from realtime_bridge.events import TOPIC_PREFIX
from realtime_bridge.expiry import ExpiryTimers
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
from velocity.auth import Claims, TokenError

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
    """One socket's view of the limits profile (rates are tenant-wide: the hub's ``limits.TenantLimits``)."""

    max_payload_bytes: int
    max_channels: float
    idle_timeout: float
    join_error_delay: float
    max_concurrent_users: float = limits.UNLIMITED

    @classmethod
    def from_settings(cls) -> Limits:
        profile = limits.profile_from_settings()
        return cls(
            max_payload_bytes=profile.max_payload_bytes,
            max_channels=profile.max_channels_per_client,
            idle_timeout=settings.REALTIME_IDLE_TIMEOUT,
            join_error_delay=settings.REALTIME_JOIN_ERROR_DELAY,
            max_concurrent_users=profile.max_concurrent_users,
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
    # This channel's client presence budget (limits.PresenceWindow), made at its first presence message.
    presence_window: limits.PresenceWindow | None = None

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
    # Set by the consumer when the server lets the hub write pre-framed broadcasts to the socket (wire.py).
    writer: DirectWriter | None = None
    # One timer per channel at its token's expiry (expiry.py).
    timers: ExpiryTimers = field(default_factory=ExpiryTimers)

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
        """Phoenix's socket answers every push to a topic it has not joined (`access_token` included)."""
        if message.event == "phx_leave":
            await self.push(reply(message))
        else:
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
        else:
            self.hub.limits.events.add()  # Realtime counts an unexpected message as an event

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
            if refusal in limits.JOIN_LIMITS:
                metrics.limited(refusal)
            if refusal == limits.TOO_MANY_JOINS:
                await self.transport.close_socket()  # Realtime disconnects the socket with this refusal
            return
        await self._accept_join(message, config, refusal)

    async def _join_refusal(self, message: Message, config: JoinConfig) -> str | Claims:
        """The refusal reason, or the claims the channel runs with."""
        sub_topic = message.topic.removeprefix(TOPIC_PREFIX)
        if not message.topic.startswith(TOPIC_PREFIX) or not sub_topic:
            return "TopicNameRequired: You must provide a topic name"
        if policies.public_refused(sub_topic) and not config.private:
            return PRIVATE_ONLY
        if refusal := self._limit_refusal():
            return refusal
        token = _join_token(message.payload)
        try:
            claims = self._join_claims(token)
        except TokenError as exc:
            return token_refusals.refusal(exc, token or self.apikey, time.time()).join_reason
        if not await self.allowed(claims, sub_topic, policies.READ, private=config.private):
            return f"Unauthorized: You do not have permissions to read from this Channel topic: {sub_topic}"
        return claims

    def _limit_refusal(self) -> str | None:
        """Realtime's join limits, in its order (realtime_channel.ex: max users, joins, channels)."""
        if self._over_users():
            return limits.TOO_MANY_USERS
        if self.hub.limits.joins.triggered:
            return limits.TOO_MANY_JOINS
        self.hub.limits.joins.add()
        if len(self.channels) >= self.limits.max_channels:
            return limits.TOO_MANY_CHANNELS
        return None

    def _over_users(self) -> bool:
        """Sockets with a channel, in this process (Realtime's UsersCounter is cluster-wide)."""
        cap = self.limits.max_concurrent_users
        if self.channels or cap == limits.UNLIMITED:
            return False
        return sum(1 for conn in self.hub.connections if conn.channels) >= cap

    def _join_claims(self, token: str | None) -> Claims:
        """The join's own token, else the socket's key (which may have expired since the handshake)."""
        if token:
            return token_refusals.realtime_claims(token, time.time())
        if token_refusals.is_expired(self.claims.exp, time.time()):
            raise TokenError("auth.expired", "the token has expired")
        return self.claims

    async def allowed(self, claims: Claims, sub_topic: str, action: str, *, private: bool) -> bool:
        """A public channel on an unclaimed topic needs no policy (policies.py); everything else asks one."""
        return policies.public_open(sub_topic, private=private) or await self.authorize(claims, sub_topic, action)

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
        self._arm_expiry(state)
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
            self.timers.cancel(state.key)
        await self.hub.unsubscribe(state)
        close = Message(state.topic, "phx_close", {}, ref=state.join_ref, join_ref=state.join_ref)
        await self.push(close)

    async def fail_channel(self, state: ChannelState, text: str) -> None:
        await self.push(self._system(state, "error", text))
        await self.close_channel(state)

    async def shut_for_limit(self, state: ChannelState, text: str) -> None:
        """A limit of the profile ends the channel as Realtime's ``shutdown_response`` does, counted."""
        metrics.limited(text)
        logger.warning("realtime channel shut by a limit", extra={"topic": state.topic, "limit": text})
        await self.fail_channel(state, text)

    # --- broadcast -------------------------------------------------------------------------

    async def may_write(self, state: ChannelState) -> bool:
        """Write access, asked once per channel and token (Realtime caches its RLS insert check so)."""
        if state.can_write is None:
            state.can_write = await self.allowed(
                state.claims, state.sub_topic, policies.WRITE, private=state.config.private
            )
        return state.can_write

    async def broadcast(self, state: ChannelState, message: Message) -> None:
        """Counted once here and once per receiver (hub.deliver); the sender is never refused for the rate,
        the receivers' channels are shut (broadcast_handler.ex, message_dispatcher.ex)."""
        if not await self.may_write(state):
            return  # Realtime drops a broadcast without write access, with no reply even when acked
        self.hub.limits.events.add()
        frames = _frames_for(state.topic, message.payload)
        if frames is None:
            await self._refuse_malformed(message)
            return
        if frames.size() > self.limits.max_payload_bytes:
            metrics.limited(limits.PAYLOAD_TOO_BIG)
            if state.config.ack:
                await self.push(reply(message, "error", {"reason": limits.PAYLOAD_TOO_BIG}))
            return
        await self.hub.broadcast(state.group, frames, sender=self.id)
        metrics.broadcast_seen(frames.event, frames.size())
        publish.mirror_broadcast_soon(state.sub_topic, frames.event, frames.json_payload)
        if state.config.ack:
            await self.push(reply(message))

    # --- presence --------------------------------------------------------------------------

    async def presence(self, state: ChannelState, message: Message) -> None:
        payload = message.payload if isinstance(message.payload, dict) else {}
        kind = str(payload.get("event", "")).lower()
        if not self._presence_allowed(state):
            await self.shut_for_limit(state, limits.CLIENT_PRESENCE)
        elif kind == "track" and not await self.may_write(state):
            reason = f"Unauthorized: You do not have permissions to write to this Channel topic: {state.sub_topic}"
            await self.push(reply(message, "error", {"reason": reason}))
        elif kind == "track":
            await self._track(state, message, payload.get("payload", {}))
        elif kind == "untrack":
            await self.hub.presence_untrack(state)
            await self.push(reply(message))

    def _presence_allowed(self, state: ChannelState) -> bool:
        """Every presence message (track or untrack) spends the channel's window (presence_handler.ex)."""
        if state.presence_window is None:
            state.presence_window = self.hub.limits.presence_window()
        return state.presence_window.allow(time.monotonic())

    async def _track(self, state: ChannelState, message: Message, meta: Any) -> None:
        if not isinstance(meta, dict):
            reason = {"reason": "Presence track payload must be a map"}
            await self.push(reply(message, "error", reason))
        elif len(dumps(meta)) > self.limits.max_payload_bytes:
            await self.shut_for_limit(state, limits.TRACK_TOO_BIG)
        elif self.hub.limits.presence.over:
            await self.shut_for_limit(state, limits.TOO_MANY_PRESENCE)
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
            claims = token_refusals.realtime_claims(token, time.time())
        except TokenError as exc:
            await self.fail_channel(state, token_refusals.refusal(exc, token, time.time()).system_text)
            return
        if not await self.allowed(claims, state.sub_topic, policies.READ, private=state.config.private):
            # Realtime's refresh re-asks the read policies with the new token and ends the channel with the
            # join's own refusal text (realtime_channel.ex, handle_in("access_token")).
            await self.fail_channel(
                state, f"You do not have permissions to read from this Channel topic: {state.sub_topic}"
            )
            return
        state.claims, state.can_write = claims, None
        self._arm_expiry(state)

    def _arm_expiry(self, state: ChannelState) -> None:
        self.timers.arm(state.key, state.claims.exp, lambda: self.expire(state))

    async def expire(self, state: ChannelState) -> None:
        """The channel's token reached its expiry: end the channel as Realtime's `confirm_token` timer does."""
        if self.channels.get(state.topic) is not state:
            return
        now = time.time()
        if not token_refusals.is_expired(state.claims.exp, now):
            self._arm_expiry(state)  # the timer fired a moment early, or the token was refreshed meanwhile
            return
        logger.info("realtime channel token expired", extra={"conn": self.id, "topic": state.topic})
        await self.fail_channel(state, token_refusals.expired_text(state.claims.exp, now))

    async def recheck(self, state: ChannelState) -> bool:
        """Access to the topic changed: keep the channel if its token may still read it, else end it."""
        if self.channels.get(state.topic) is not state:
            return True
        if await self.allowed(state.claims, state.sub_topic, policies.READ, private=state.config.private):
            state.can_write = None
            return True
        logger.info("realtime channel lost access", extra={"conn": self.id, "topic": state.topic})
        await self.fail_channel(state, _no_longer(state))
        return False

    # --- housekeeping ----------------------------------------------------------------------

    async def sweep(self, now: float) -> None:
        """Close the socket when idle (token expiry has its own timers: expiry.py)."""
        if now - self.last_seen > self.limits.idle_timeout:
            logger.info("realtime idle socket closed", extra={"conn": self.id})
            await self.transport.close_socket()

    async def close(self) -> None:
        self.timers.cancel_all()
        for state in list(self.channels.values()):
            self.channels.pop(state.topic, None)
            await self.hub.unsubscribe(state)
        self.hub.unregister(self)


def _no_longer(state: ChannelState) -> str:
    return f"You no longer have permission to read from this Channel topic: {state.sub_topic}"


def _join_token(payload: Any) -> str | None:
    """The join's own token: `access_token`, else `user_token`; an `sb_` API key means the socket's key."""
    token = payload.get("access_token") or payload.get("user_token") if isinstance(payload, dict) else None
    if isinstance(token, str) and token and not token.startswith("sb_"):
        return token
    return None


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
