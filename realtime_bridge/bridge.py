"""Client mode: mirror a real Supabase project's `project:{id}` broadcasts into the operator views.

`Bridge` keeps one supabase-py (`realtime`) channel per live project, spread over as many
sockets as the per-socket channel limit needs, and forwards every broadcast through
`publish.mirror_broadcast(..., source="bridge")`. `run_bridge` holds the database lease so only
one instance mirrors, reconciles the joined topics with the live sessions every few seconds
(join on activation, leave on end) and reconnects dead sockets with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone
from realtime import AsyncRealtimeChannel, AsyncRealtimeClient, RealtimeSubscribeStates

from realtime_bridge import policies, publish, services

logger = logging.getLogger(__name__)

BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)
CHANNEL_OPTIONS: Any = {
    "config": {
        "broadcast": {"self": False, "ack": False},
        "presence": {"key": "", "enabled": False},
        "private": True,
    }
}


class JoinFailed(Exception):
    pass


@dataclass(eq=False)
class MirrorSocket:
    client: AsyncRealtimeClient
    channels: dict[str, AsyncRealtimeChannel] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.client.is_connected


class Bridge:
    def __init__(self, *, url: str, key: str, channels_per_socket: int = 100) -> None:
        self.url = url.rstrip("/") + "/realtime/v1"
        self.key = key
        self.channels_per_socket = channels_per_socket
        self.sockets: list[MirrorSocket] = []
        self.failures = 0
        self.retry_at = 0.0
        self.queue: asyncio.Queue[tuple[str, str, Any]] = asyncio.Queue()
        self._forwarder: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls) -> Bridge:
        return cls(
            url=settings.SUPABASE_URL,
            key=settings.SUPABASE_SERVICE_ROLE_KEY,
            channels_per_socket=settings.REALTIME_BRIDGE_CHANNELS_PER_SOCKET,
        )

    @property
    def joined(self) -> set[str]:
        return {topic for sock in self.sockets for topic in sock.channels}

    async def reconcile(self, wanted: set[str]) -> None:
        """Leave topics no longer wanted, drop dead sockets, join the missing topics."""
        self._ensure_forwarder()
        await self._drop_dead_sockets()
        for topic in self.joined - wanted:
            await self._leave(topic)
        for topic in sorted(wanted - self.joined):
            if time.monotonic() < self.retry_at:
                return
            try:
                await self._join(topic)
                self.failures = 0
            except Exception:
                self._back_off(topic)
                return

    def _back_off(self, topic: str) -> None:
        delay = BACKOFF[min(self.failures, len(BACKOFF) - 1)]
        self.failures += 1
        self.retry_at = time.monotonic() + delay
        logger.warning("realtime bridge join failed", extra={"topic": topic, "retry_in": delay})

    async def _drop_dead_sockets(self) -> None:
        for sock in [s for s in self.sockets if not s.alive]:
            logger.warning("realtime bridge socket lost", extra={"channels": len(sock.channels)})
            self.sockets.remove(sock)
            with contextlib.suppress(Exception):
                await sock.client.close()

    async def _socket_with_room(self) -> MirrorSocket:
        for sock in self.sockets:
            if len(sock.channels) < self.channels_per_socket:
                return sock
        client = AsyncRealtimeClient(self.url, token=self.key, auto_reconnect=False)
        await client.connect()
        sock = MirrorSocket(client)
        self.sockets.append(sock)
        return sock

    async def _join(self, topic: str) -> None:
        sock = await self._socket_with_room()
        channel = sock.client.channel(topic, CHANNEL_OPTIONS)
        channel.on_broadcast("*", partial(self._received, topic))
        states: list[RealtimeSubscribeStates] = []
        await channel.subscribe(lambda state, error: states.append(state))
        if states[:1] != [RealtimeSubscribeStates.SUBSCRIBED]:
            await sock.client.remove_channel(channel)
            raise JoinFailed(topic)
        sock.channels[topic] = channel
        logger.info("realtime bridge joined", extra={"topic": topic})

    async def _leave(self, topic: str) -> None:
        sock = next(s for s in self.sockets if topic in s.channels)
        channel = sock.channels.pop(topic)
        with contextlib.suppress(Exception):
            await sock.client.remove_channel(channel)  # closes the socket with its last channel
        if not sock.channels:
            self.sockets.remove(sock)
        logger.info("realtime bridge left", extra={"topic": topic})

    def _received(self, topic: str, message: Any) -> None:
        """Called on the client's read loop: only queue, the forwarder does the work."""
        self.queue.put_nowait((topic, str(message.get("event", "")), message.get("payload")))

    def _ensure_forwarder(self) -> None:
        if self._forwarder is None or self._forwarder.done():
            self._forwarder = asyncio.get_running_loop().create_task(self._forward())

    async def _forward(self) -> None:
        while True:
            topic, event, payload = await self.queue.get()
            await publish.mirror_broadcast(topic, event, {"event": event, "payload": payload}, source="bridge")

    async def close(self) -> None:
        if self._forwarder is not None:
            self._forwarder.cancel()
        for sock in self.sockets:
            with contextlib.suppress(Exception):
                await sock.client.close()
        self.sockets.clear()


def holder_name() -> str:
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


@database_sync_to_async
def _acquire(holder: str, ttl: float) -> bool:
    return services.lease_acquire(holder=holder, ttl=ttl, now=timezone.now())


@database_sync_to_async
def _release(holder: str) -> None:
    services.lease_release(holder=holder)


@database_sync_to_async
def _wanted() -> set[str]:
    return policies.mirrored_topics()


async def run_bridge(stop: asyncio.Event, *, interval: float = 2.0, ttl: float = 15.0) -> None:
    """Mirror while holding the lease; give it back on stop."""
    holder, bridge = holder_name(), None
    try:
        while not stop.is_set():
            bridge = await _bridge_step(holder, bridge, ttl)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        if bridge is not None:
            await bridge.close()
        await _release(holder)


async def _bridge_step(holder: str, bridge: Bridge | None, ttl: float) -> Bridge | None:
    try:
        held = await _acquire(holder, ttl)
    except Exception:
        logger.exception("realtime bridge lease check failed")
        held = False
    if not held:
        if bridge is not None:
            logger.warning("realtime bridge lost its lease", extra={"holder": holder})
            await bridge.close()
        return None
    bridge = bridge or Bridge.from_settings()
    await bridge.reconcile(await _wanted())
    return bridge
