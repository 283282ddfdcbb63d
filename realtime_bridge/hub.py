"""The per-process fan-out hub behind the embedded Realtime endpoint.

One hub per event loop (daphne runs one). Local sockets are delivered to directly, with each
broadcast encoded once per wire form (`BroadcastFrames`). With Redis, a broadcast reaches the other
processes through `peers.py` (pub/sub, only to the processes that follow its topic, off the local
delivery's path); presence, row changes and re-authorizations go through the channel layer, where the
hub's own channel joins one group per topic that has local subscribers. With the in-memory layer there
is no other process, so nothing remote is sent for broadcasts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from realtime_bridge import limits, metrics, peers, postgres_changes
from realtime_bridge.events import PG_GROUP, TOPIC_PREFIX
from realtime_bridge.presence import PresenceTable
from realtime_bridge.protocol import BinaryBroadcast, BroadcastFrames, Message

if TYPE_CHECKING:
    from realtime_bridge.connection import ChannelState, Connection

logger = logging.getLogger(__name__)

SWEEP_INTERVAL = 5.0
# channels_redis forgets group members after `group_expiry` (a day by default): re-add ours hourly.
GROUP_REFRESH_INTERVAL = 3600.0

_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def topic_group(topic: str, *, private: bool) -> str:
    """A valid Channels group name for a Realtime topic (public and private are separate)."""
    digest = hashlib.sha1(topic.encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"rt.{'priv' if private else 'pub'}.{digest}"


def get_hub() -> Hub:
    """The hub of the running event loop, created on first use."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub


def existing_hub() -> Hub | None:
    try:
        return _hubs.get(asyncio.get_running_loop())
    except RuntimeError:
        return None


class Hub:
    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.groups: dict[str, dict[str, ChannelState]] = {}
        self.presence: dict[str, PresenceTable] = {}
        self.connections: set[Connection] = set()
        self.layer = get_channel_layer()
        self.remote = self.layer is not None and not isinstance(self.layer, InMemoryChannelLayer)
        self.channel_name: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready: asyncio.Future[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._sweeping_every = SWEEP_INTERVAL
        self._groups_refreshed_at = time.monotonic()
        # A socket whose unsent frames pass this many bytes is closed (a stalled reader; see wire.py).
        self.max_backlog: int = settings.REALTIME_MAX_SEND_BUFFER_BYTES
        # Tenant-wide rates (events with fan-out, joins, presence), shared through Redis between processes.
        self.limits = limits.tenant_limits()
        self.peers = peers.peers_for(self.id, self._deliver_remote, lambda: list(self.groups)) if self.remote else None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the process channel and start the cross-process listener, once."""
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            if self.remote and self.layer is not None:
                self.channel_name = await self.layer.new_channel()
                await self._layer("group_add", PG_GROUP, self.channel_name)
                self._spawn(self._listen())
                if self.peers is not None:
                    self.peers.start(self._spawn)
            if self.limits.profile.counts_rates:
                self._spawn(limits.run_ticks(self.limits))
            self._ready.set_result(None)
        await self._ready

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def register(self, conn: Connection) -> None:
        await self.start()
        self.connections.add(conn)
        metrics.socket_opened()
        interval = self._sweep_interval()
        if self._sweeper is not None and not self._sweeper.done() and interval < self._sweeping_every:
            self._sweeper.cancel()  # a shorter idle timeout than the running sweep can honour
        if self._sweeper is None or self._sweeper.done():
            self._sweeping_every = interval
            self._sweeper = self._spawn(self._sweep())

    def _sweep_interval(self) -> float:
        shortest = min((c.limits.idle_timeout for c in self.connections), default=SWEEP_INTERVAL * 4)
        return min(SWEEP_INTERVAL, shortest / 4)

    def unregister(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            metrics.socket_closed()

    # --- subscriptions ---------------------------------------------------------------------

    async def subscribe(self, state: ChannelState) -> None:
        members = self.groups.setdefault(state.group, {})
        first = not members
        members[state.key] = state
        if first and self.remote and self.layer is not None and self.channel_name:
            await self._layer("group_add", state.group, self.channel_name)
            if self.peers is not None:
                await self.peers.follow(state.group)
            await self._request_presence_sync(state.group)

    async def unsubscribe(self, state: ChannelState) -> None:
        members = self.groups.get(state.group, {})
        if members.pop(state.key, None) is None:
            return
        await self.presence_untrack(state)
        if not members:
            self.groups.pop(state.group, None)
            table = self.presence.get(state.group)
            if table is not None and not table.local_entries():
                self.presence.pop(state.group, None)
            if self.peers is not None:
                self.peers.unfollow(state.group)
            if self.remote and self.layer is not None and self.channel_name:
                await self._layer("group_discard", state.group, self.channel_name)

    async def _layer(self, method: str, *args: Any) -> None:
        """A channel-layer call that degrades to this process only when the layer (Redis) fails."""
        if self.layer is None:
            return
        try:
            await getattr(self.layer, method)(*args)
        except Exception:
            logger.exception("realtime channel layer call failed", extra={"method": method})

    def subscribers(self, group: str) -> Iterable[ChannelState]:
        return list(self.groups.get(group, {}).values())

    # --- broadcast -------------------------------------------------------------------------

    async def broadcast(self, group: str, frames: BroadcastFrames, *, sender: str | None) -> int:
        """Deliver here, and to the other processes that follow ``group``.

        The pub/sub send only queues (its writer publishes after this returns); a hub whose peers are not
        ready (not started, as in a task worker, or Redis just came back) uses the layer after delivering."""
        handed = self.peers is not None and self.peers.send(group, frames)
        delivered = await self.deliver(group, frames, sender=sender)
        if self.remote and not handed:
            await self._layer("group_send", group, _broadcast_message(self.id, group, frames))
        return delivered

    async def _deliver_remote(self, group: str, frames: BroadcastFrames) -> None:
        await self.deliver(group, frames, sender=None)

    async def deliver(self, group: str, frames: BroadcastFrames, *, sender: str | None) -> int:
        """Write the shared frame to every local subscriber; sockets without a direct writer go after.

        The direct loop does no awaiting and no per-socket encoding, logging or metrics: one write each.
        """
        states = [s for s in self.subscribers(group) if s.conn.id != sender or s.self_broadcast]
        outcome = write_direct([s.conn for s in states], frames, self.max_backlog)
        for conn in outcome.overflowing:
            await conn.overflowed()
        for conn in outcome.indirect:
            await conn.send_frame(frames.for_vsn(conn.vsn) or "")
        metrics.deliveries(outcome.delivered)
        self.limits.events.add(outcome.delivered)
        if self.limits.events.triggered:
            await self._shut_over_rate(states, frames)
        return outcome.delivered

    async def _shut_over_rate(self, states: list[ChannelState], frames: BroadcastFrames) -> None:
        """Over the tenant's events a second, every channel a message reached is shut after it (Realtime's
        ``:update_rate_counter`` in the receiving channel)."""
        for state in states:
            if frames.wire_for_vsn(state.conn.vsn) is not None and state.conn.channels.get(state.topic) is state:
                await state.conn.shut_for_limit(state, limits.TOO_MANY_MESSAGES)

    # --- presence --------------------------------------------------------------------------

    def presence_table(self, group: str) -> PresenceTable:
        table = self.presence.get(group)
        if table is None:
            table = self.presence[group] = PresenceTable()
        return table

    async def presence_track(self, state: ChannelState, meta: dict[str, Any]) -> None:
        diff = self.presence_table(state.group).track(state.key, state.presence_key, meta)
        if diff is not None:
            await self._publish_presence(state.group, state.topic, diff)

    async def presence_untrack(self, state: ChannelState) -> None:
        table = self.presence.get(state.group)
        diff = table.untrack(state.key) if table is not None else None
        if diff is not None:
            await self._publish_presence(state.group, state.topic, diff)

    async def _publish_presence(self, group: str, topic: str, diff: dict[str, Any]) -> None:
        await self.deliver_presence(group, topic, diff)
        if self.remote:
            message = {"type": "rt.presence", "origin": self.id, "group": group, "topic": topic}
            await self._layer("group_send", group, {**message, "diff": diff})

    async def deliver_presence(self, group: str, topic: str, diff: dict[str, Any]) -> None:
        frames: dict[str, str] = {}
        for state in self.subscribers(group):
            if not hears_presence(state):
                continue
            self.limits.presence.add()
            frame = frames.get(state.conn.vsn)
            if frame is None:
                message = Message(topic=topic, event="presence_diff", payload=diff)
                frame = frames[state.conn.vsn] = state.conn.serializer.encode(message)
            await state.conn.send_frame(frame)

    async def _request_presence_sync(self, group: str) -> None:
        message = {"type": "rt.presence_sync", "origin": self.id, "group": group}
        await self._layer("group_send", group, {**message, "reply_to": self.channel_name})

    # --- postgres changes ------------------------------------------------------------------

    async def deliver_change(self, change: dict[str, Any]) -> None:
        await postgres_changes.deliver_change(self.groups.values(), change)

    # --- access changes --------------------------------------------------------------------

    async def reauthorize(self, topic: str) -> int:
        """Re-check every local channel on ``topic``; returns how many were closed."""
        closed = 0
        for private in (True, False):
            members = self.groups.get(topic_group(TOPIC_PREFIX + topic, private=private), {})
            for state in list(members.values()):
                if not await state.conn.recheck(state):
                    closed += 1
        return closed

    # --- cross-process listener ------------------------------------------------------------

    async def _listen(self) -> None:
        layer, channel_name = self.layer, self.channel_name
        if layer is None or channel_name is None:
            return
        while True:
            try:
                message = await layer.receive(channel_name)
                await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("realtime hub listener failed on a message")
                await asyncio.sleep(1.0)  # a Redis outage must not spin
                await self._rejoin_groups()

    async def _rejoin_groups(self) -> None:
        """Re-add this process to every group it follows: a Redis restarted without persistence forgot them."""
        if self.layer is None or self.channel_name is None:
            return
        for group in [PG_GROUP, *self.groups]:
            await self._layer("group_add", group, self.channel_name)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if message.get("origin") == self.id:
            return
        if kind == "rt.pg":
            await self.deliver_change(message["change"])
        elif kind == "rt.broadcast":
            frames = _frames_from_message(message)
            await self.deliver(message["group"], frames, sender=None)
        elif kind == "rt.presence":
            self.presence_table(message["group"]).apply_remote(message["origin"], message["diff"])
            await self.deliver_presence(message["group"], message["topic"], message["diff"])
        elif kind == "rt.presence_sync":
            await self._answer_presence_sync(message)
        elif kind == "rt.reauth":
            await self.reauthorize(message["topic"])

    async def _answer_presence_sync(self, message: dict[str, Any]) -> None:
        table = self.presence.get(message["group"])
        joins = table.local_state() if table is not None else {}
        members = self.groups.get(message["group"], {})
        if joins and members and self.layer is not None:
            topic = next(iter(members.values())).topic
            reply = {"type": "rt.presence", "origin": self.id, "group": message["group"]}
            diff = {"joins": joins, "leaves": {}}
            await self.layer.send(message["reply_to"], {**reply, "topic": topic, "diff": diff})

    # --- idle sockets ----------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Every few seconds while sockets are open: idle sockets (token expiry has timers: expiry.py)."""
        while self.connections:
            await asyncio.sleep(self._sweeping_every)
            now = time.monotonic()
            for conn in list(self.connections):
                try:
                    await conn.sweep(now)
                except Exception:
                    logger.exception("realtime sweep failed on a socket")
            if now - self._groups_refreshed_at > GROUP_REFRESH_INTERVAL:
                await self.refresh_groups(now)

    async def refresh_groups(self, now: float) -> None:
        """Renew this process's membership of its topic groups in the channel layer."""
        self._groups_refreshed_at = now
        if not (self.remote and self.layer is not None and self.channel_name):
            return
        for group in [PG_GROUP, *self.groups]:
            try:
                await self.layer.group_add(group, self.channel_name)
            except Exception:
                logger.exception("realtime group refresh failed", extra={"group": group})


def hears_presence(state: ChannelState) -> bool:
    """Who gets a topic's `presence_diff`, as Realtime's dispatcher decides it
    (``lib/realtime_web/channels/realtime_channel/message_dispatcher.ex``): on a public channel every
    subscriber, presence enabled or not (nothing gates reading it); on a private one only a channel that
    enabled presence at its join or by tracking (its read access was checked at the join)."""
    return state.presence_enabled or not state.config.private


@dataclass(slots=True)
class Written:
    """What one direct fan-out pass did: receivers reached, those left to the ASGI send, those over backlog."""

    delivered: int = 0
    indirect: list[Connection] = field(default_factory=list)
    overflowing: list[Connection] = field(default_factory=list)


def write_direct(receivers: Iterable[Connection], frames: BroadcastFrames, max_backlog: int) -> Written:
    """Write ``frames`` to each receiver's socket directly (receivers that cannot take the form are skipped)."""
    outcome = Written()
    for conn in receivers:
        wire = frames.wire_for_vsn(conn.vsn)
        if wire is None:
            continue
        outcome.delivered += 1
        writer = conn.writer
        if writer is None or not writer.write(wire):
            outcome.indirect.append(conn)
        elif writer.backlog() > max_backlog:
            outcome.overflowing.append(conn)
    return outcome


def _broadcast_message(origin: str, group: str, frames: BroadcastFrames) -> dict[str, Any]:
    binary = frames.binary
    return {
        "type": "rt.broadcast",
        "origin": origin,
        "group": group,
        "topic": frames.topic,
        "json": frames.json_payload,
        "bin": None if binary is None else {"event": binary.event, "data": binary.data, "encoding": binary.encoding},
    }


def _frames_from_message(message: dict[str, Any]) -> BroadcastFrames:
    raw = message.get("bin")
    binary = None if raw is None else BinaryBroadcast(raw["event"], raw["data"], raw["encoding"])
    return BroadcastFrames(message["topic"], message.get("json"), binary)
