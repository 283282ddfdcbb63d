"""Broadcasts between web processes: Redis pub/sub, sent only to the processes that follow the topic.

Each hub subscribes, on one connection, to its own inbox channel and to a control channel shared by the
deployment's hubs. On the control channel a hub says which topic groups it follows (``hello`` with all of
them when it connects, then ``follow`` and ``unfollow``), so every hub knows, in memory, which other hubs
have subscribers for a group. A broadcast is encoded once and published to the inbox of each such hub, by
one writer task that pipelines whatever is waiting; a group no other hub follows costs nothing remote.

A ``follow`` waits until every hub that heard it has acknowledged it (or ``ACK_TIMEOUT``): a broadcast
sent after the join's reply then reaches the new subscriber, as with the channel layer's ``group_add``.
A hub that no longer listens is forgotten when a publish to its inbox reaches nobody. Until the hello has
been answered (start, or after Redis came back) ``send`` returns False and the hub uses the channel layer.
Pub/sub channels ignore the Redis database number, so their names carry it and the database's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgpack
import redis.asyncio as aioredis
from django.conf import settings

from realtime_bridge.protocol import BinaryBroadcast, BroadcastFrames

logger = logging.getLogger(__name__)

ACK_TIMEOUT = 1.0
RECONNECT_DELAY = 0.5
LISTEN_POLL_SECONDS = 1.0
MAX_OUTBOX = 20_000

Deliver = Callable[[str, BroadcastFrames], Awaitable[Any]]


def peers_for(hub_id: str, deliver: Deliver, groups: Callable[[], list[str]]) -> Peers | None:
    """The pub/sub link of a hub, when the deployment has Redis."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    database = urlsplit(url).path.strip("/") or "0"
    prefix = f"velocity:rt:peers:{database}:{settings.DATABASES['default']['NAME']}"
    return Peers(hub_id, url, prefix, deliver, groups)


@dataclass(slots=True)
class Waiter:
    """Replies to one announcement: how many came, and how many hubs heard it (known once published)."""

    received: int = 0
    expected: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def check(self) -> None:
        if self.expected is not None and self.received >= self.expected:
            self.done.set()


class Peers:
    def __init__(self, hub_id: str, url: str, prefix: str, deliver: Deliver, groups: Callable[[], list[str]]) -> None:
        self.hub_id, self.url, self.prefix = hub_id, url, prefix
        self.control = f"{prefix}:control"
        self.inbox = self.inbox_of(hub_id)
        self.followers: dict[str, set[str]] = {}
        self.connected = self.ready = False
        self.published = 0  # broadcasts handed to another hub's inbox
        self._deliver, self._groups = deliver, groups
        self._outbox: list[tuple[str, bytes, str | None, asyncio.Future[int | None] | None]] = []
        self._wake = asyncio.Event()
        self._waiters: dict[str, Waiter] = {}
        self._session = 0

    def inbox_of(self, hub_id: str) -> str:
        return f"{self.prefix}:hub:{hub_id}"

    def start(self, spawn: Callable[[Any], Any]) -> None:
        spawn(self._write())
        spawn(self._read())

    # --- sending ---------------------------------------------------------------------------

    def send(self, group: str, frames: BroadcastFrames) -> bool:
        """Queue ``frames`` for every other hub following ``group``; False when not ready (use the layer)."""
        if not self.ready:
            return False
        hubs = self.followers.get(group)
        if hubs:
            try:
                data = _pack(["b", group, frames.topic, frames.json_payload, _binary(frames.binary)])
            except (TypeError, ValueError, OverflowError):
                return False  # e.g. an integer past 64 bits: the layer tries (and logs) it
            for hub in hubs:
                self._post(self.inbox_of(hub), data, target=hub)
            self.published += len(hubs)
        return True

    async def follow(self, group: str) -> None:
        """Tell the other hubs this one follows ``group``, and wait until they heard it."""
        if self.connected:
            await self._announce("f", group)

    def unfollow(self, group: str) -> None:
        if self.connected:
            self._post(self.control, _pack(["u", self.hub_id, group]))

    async def _announce(self, kind: str, subject: Any) -> None:
        request = uuid.uuid4().hex
        waiter = self._waiters[request] = Waiter()
        try:
            heard = await self._post_counted(self.control, _pack([kind, self.hub_id, subject, request]))
            waiter.expected = max((heard or 1) - 1, 0)  # the control channel's listeners, this hub included
            waiter.check()
            await asyncio.wait_for(waiter.done.wait(), ACK_TIMEOUT)
        except TimeoutError:
            logger.warning("realtime peers: not every hub answered", extra={"expected": waiter.expected})
        finally:
            self._waiters.pop(request, None)

    def _post(self, channel: str, data: bytes, *, target: str | None = None) -> None:
        if len(self._outbox) >= MAX_OUTBOX:
            return  # Redis is not keeping up (or away): this process's sockets still got the broadcast
        self._outbox.append((channel, data, target, None))
        self._wake.set()

    async def _post_counted(self, channel: str, data: bytes) -> int | None:
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._outbox.append((channel, data, None, done))
        self._wake.set()
        return await done

    async def _write(self) -> None:
        """Publish everything queued, in order, one pipeline per wake-up."""
        client = aioredis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=1)
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                batch, self._outbox = self._outbox, []
                counts = await self._publish(client, [(channel, data) for channel, data, _, _ in batch])
                raise_if_cancelled()
                for (_, _, target, done), count in zip(batch, counts, strict=True):
                    if done is not None and not done.done():
                        done.set_result(count)
                    elif target is not None and count == 0:
                        self._forget(target)
        finally:
            await client.aclose()

    async def _publish(self, client: aioredis.Redis, messages: list[tuple[str, bytes]]) -> list[int | None]:
        try:
            async with client.pipeline(transaction=False) as pipe:
                for channel, data in messages:
                    pipe.publish(channel, data)
                return list(await pipe.execute())
        except Exception:
            raise_if_cancelled()
            logger.warning("realtime peers: publish failed, other processes missed it", exc_info=True)
            return [None] * len(messages)

    # --- receiving -------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception:
                raise_if_cancelled()
                logger.warning("realtime peers: connection to Redis lost, reconnecting", exc_info=True)
            await asyncio.sleep(RECONNECT_DELAY)

    async def _listen(self) -> None:
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=1)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._session += 1
        try:
            await pubsub.subscribe(self.control, self.inbox)
            self.connected = True
            hello = asyncio.get_running_loop().create_task(self._hello(self._session))
            try:
                while True:
                    # A bounded wait, not listen(): a cancellation redis-py drops (Python 3.11's wait_for) is then
                    # noticed within a second, where listen() would wait for a message forever.
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=LISTEN_POLL_SECONDS)
                    raise_if_cancelled()
                    if message is not None:
                        await self._handle_safely(message["channel"], message["data"])
            finally:
                hello.cancel()
        finally:
            self.connected = self.ready = False
            with contextlib.suppress(Exception):  # the connection may already be gone
                await pubsub.aclose()
                await client.aclose()

    async def _hello(self, session: int) -> None:
        """Say which groups this hub follows and learn the others'; then broadcasts may skip the layer."""
        await self._announce("h", self._groups())
        if session == self._session and self.connected:
            self.ready = True

    async def _handle_safely(self, channel: bytes, data: bytes) -> None:
        try:
            await self._handle(channel, data)
        except Exception:
            logger.exception("realtime peers: a message from another process failed")

    async def _handle(self, channel: bytes, data: bytes) -> None:
        kind, *rest = msgpack.unpackb(data)
        if channel.decode() == self.inbox:
            await self._from_inbox(kind, rest)
        elif rest[0] != self.hub_id:
            self._from_control(kind, *rest)

    async def _from_inbox(self, kind: str, rest: list[Any]) -> None:
        if kind == "b":
            group, topic, payload, binary = rest
            raw = None if binary is None else BinaryBroadcast(*binary)
            await self._deliver(group, BroadcastFrames(topic, payload, raw))
        elif kind == "s":
            hub, groups, request = rest
            self._set_groups(hub, groups)
            self._acknowledged(request)
        elif kind == "a":
            self._acknowledged(rest[0])

    def _from_control(self, kind: str, hub: str, subject: Any, request: str | None = None) -> None:
        if kind == "h":
            self._set_groups(hub, subject)
            self._post(self.inbox_of(hub), _pack(["s", self.hub_id, self._groups(), request]))
        elif kind == "f":
            self.followers.setdefault(subject, set()).add(hub)
            self._post(self.inbox_of(hub), _pack(["a", request]))
        elif kind == "u":
            self._drop(subject, hub)

    def _acknowledged(self, request: str) -> None:
        waiter = self._waiters.get(request)
        if waiter is not None:
            waiter.received += 1
            waiter.check()

    def _set_groups(self, hub: str, groups: list[str]) -> None:
        self._forget(hub)
        for group in groups:
            self.followers.setdefault(group, set()).add(hub)

    def _forget(self, hub: str) -> None:
        for group in [g for g, hubs in self.followers.items() if hub in hubs]:
            self._drop(group, hub)

    def _drop(self, group: str, hub: str) -> None:
        hubs = self.followers.get(group)
        if hubs is not None:
            hubs.discard(hub)
            if not hubs:
                self.followers.pop(group, None)


def raise_if_cancelled() -> None:
    """Python 3.11's ``wait_for`` (redis-py's socket timeout) can return a result and drop a cancellation
    that arrived with it; the task still counts the request, so honour it here or the loop never ends."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _pack(message: list[Any]) -> bytes:
    return msgpack.packb(message, use_bin_type=True)


def _binary(binary: BinaryBroadcast | None) -> list[Any] | None:
    return None if binary is None else [binary.event, binary.data, binary.encoding, binary.metadata]
