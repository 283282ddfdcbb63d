"""Realtime wiring: keep ``project:{id}`` joined with the official client and relay events.

The official ``realtime`` client (2.34.1) gives up for good after ``max_retries`` failed connects,
drops pushes buffered while disconnected once their 10 s timeout passed, and never notices a dead
server through its heartbeats. So this module owns reconnection: one fresh client per connection,
``auto_reconnect=False``, and any channel error, close or timeout ends that connection and starts a
new one with backoff. Whatever the editor broadcast while the agent was away is recovered by the
``agent:manifest`` published after every join: the editor resends what differs. The editor may also
ask for it (``files:manifest_request``) after its own reconnect; those answers are paced and a burst of
requests shares one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .messages import Outgoing, Result, merge_acks
from .ratelimit import Coalescer, TokenBucket

if TYPE_CHECKING:
    from realtime import AsyncRealtimeChannel, AsyncRealtimeClient

logger = logging.getLogger(__name__)

OUTBOX_LIMIT = 2000
ACKS = frozenset({"file:synced", "files:synced"})
STABLE_CONNECTION_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 15.0
# A warm agent's socket before its claim (WarmSocket): given up after this many failed connects in a row.
WARM_CONNECT_ATTEMPTS = 5
# A Supabase project allows 100 events a second for the whole project, and counts each broadcast once sent
# and once per channel it reaches: 20 a second to one editor is 40 of them, leaving the editor and the
# server their share. Acknowledgements waiting for their turn are merged into one ``files:synced`` (mode acks)
# (messages.merge_acks), so pacing delays acks a little and never drops one.
SEND_RATE_PER_SECOND = 20.0
# At most four answers to files:manifest_request a second (a big project's manifest is many parts);
# requests in between share the next answer.
MANIFEST_REQUEST_INTERVAL = 0.25


Handler = Callable[[str, dict[str, Any]], Result]


class ManifestBuilder(Protocol):
    def __call__(self, *, reason: str, requests: Sequence[str | None] = ()) -> list[Outgoing]: ...


class RealtimeSync:
    def __init__(
        self,
        url: str,
        key: str,
        channel: str,
        *,
        handle: Handler,
        manifest: ManifestBuilder,
        send_rate: float = SEND_RATE_PER_SECOND,
        warm_client: AsyncRealtimeClient | None = None,
    ) -> None:
        self.url, self._key, self.channel_name = url, key, channel
        self._warm_client = warm_client
        self.handle, self.manifest = handle, manifest
        self.connects = 0
        self.first_connect_seconds: float | None = None
        self._outbox: deque[Outgoing] = deque(maxlen=OUTBOX_LIMIT)
        self._joined = asyncio.Event()
        self._lost = asyncio.Event()
        self._wake = asyncio.Event()
        self._channel: AsyncRealtimeChannel | None = None
        self._generation = 0
        self._pacer = TokenBucket(send_rate)  # bursts of one second's worth: at most twice the rate in a second
        self._requests = Coalescer(MANIFEST_REQUEST_INTERVAL)
        self._join_manifest_due = False
        self._answer_due = False

    @property
    def connected(self) -> bool:
        return self._joined.is_set()

    def publish(self, event: str, payload: dict[str, Any], *, droppable: bool = False) -> None:
        """Queue a broadcast; droppable ones (logs) are skipped while disconnected."""
        if droppable and (not self.connected or len(self._outbox) >= OUTBOX_LIMIT // 2):
            return  # logs never push acknowledgements out of a backed-up outbox
        self._outbox.append((event, payload))
        self._wake.set()

    def request_manifest(self, request_id: str | None) -> None:
        """Answer an editor's ``files:manifest_request``, now or once the pacing interval has passed."""
        delay = self._requests.add(request_id)
        if delay is not None:
            asyncio.get_running_loop().call_later(delay, self._answer_now)

    def _answer_now(self) -> None:
        self._answer_due = True
        self._wake.set()

    async def run(self) -> None:
        started, failures = time.monotonic(), 0
        sender = asyncio.create_task(self._send_loop(), name="realtime-sender")
        try:
            while True:
                began = time.monotonic()
                joined = await self._connect_once(started)
                stable = joined and time.monotonic() - began >= STABLE_CONNECTION_SECONDS
                failures = 1 if stable else failures + 1
                delay = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1)) * random.uniform(0.8, 1.2)  # noqa: S311
                logger.info("realtime disconnected; reconnecting", extra={"delay": round(delay, 2)})
                await asyncio.sleep(delay)
        finally:
            sender.cancel()

    async def _connect_once(self, started: float) -> bool:
        client, connected = await self._client()
        self._generation += 1
        self._lost.clear()
        try:
            channel = client.channel(self.channel_name, _CHANNEL_OPTIONS)
            channel.on_broadcast("*", self._on_broadcast)
            if connected:
                await client.set_auth(self._key)  # the join carries the assignment's key, not the warm one
            else:
                await client.connect()
            await channel.subscribe(functools.partial(self._on_state, self._generation))
            if not self._joined.is_set():
                return False
            self._on_joined(channel, started)
            await self._lost.wait()
            return True
        except Exception as error:
            logger.warning("realtime connection failed", extra={"error": type(error).__name__})
            return False
        finally:
            await self._drop(client)

    async def _client(self) -> tuple[AsyncRealtimeClient, bool]:
        """A warm agent's first connection is the socket it opened before its claim (``WarmSocket``), if that is
        still open; every other connection is a new client."""
        warm, self._warm_client = self._warm_client, None
        if warm is not None and warm.is_connected:
            return warm, True
        if warm is not None:
            await _close(warm)
        return _new_client(self.url, self._key), False

    def _on_joined(self, channel: AsyncRealtimeChannel, started: float) -> None:
        self.connects += 1
        if self.first_connect_seconds is None:
            self.first_connect_seconds = round(time.monotonic() - started, 3)
        self._channel = channel
        # The manifest supersedes acknowledgements queued while away.
        kept = [item for item in self._outbox if item[0] not in ACKS]
        self._outbox.clear()
        self._outbox.extend(kept)
        self._join_manifest_due = True
        logger.info("realtime joined", extra={"channel": self.channel_name, "connects": self.connects})
        self._wake.set()

    async def _drop(self, client: AsyncRealtimeClient) -> None:
        self._joined.clear()
        self._channel = None
        await _close(client)

    def _on_state(self, generation: int, state: Any, error: Exception | None) -> None:
        if generation != self._generation:
            return  # a late timeout from a connection already given up must not end the current one
        if str(getattr(state, "value", state)) == "SUBSCRIBED":
            self._joined.set()
        else:
            logger.info("realtime channel state", extra={"state": str(state)})
            self._joined.clear()
            self._lost.set()

    def _on_broadcast(self, message: Any) -> None:
        # Called inside the client's receive loop: an exception here would end that loop.
        try:
            payload = message.get("payload")
            result = self.handle(str(message.get("event", "")), payload if isinstance(payload, dict) else {})
        except Exception:
            logger.exception("broadcast handling failed")
            return
        for event, body in result.outgoing:
            self.publish(event, body)
        for request_id in result.manifest_requests:
            self.request_manifest(request_id)

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._joined.is_set() and (channel := self._channel) is not None and (batch := self._next()):
                for name, body in batch:
                    if wait := self._pacer.reserve():
                        await asyncio.sleep(wait)
                    try:
                        await channel.send_broadcast(name, body)
                    except Exception:
                        logger.warning("broadcast send failed", extra={"event": name})

    def _next(self) -> list[Outgoing]:
        """What to send next: manifests first (they are flags, not queue entries, so a full outbox cannot
        push them out), built when sent so they say what the agent has at that moment."""
        if self._join_manifest_due:
            self._join_manifest_due = False
            return self.manifest(reason="join")
        if self._answer_due:
            self._answer_due = False
            return self.manifest(reason="request", requests=self._requests.take())
        if not self._outbox:
            return []
        first = self._outbox.popleft()
        if first[0] not in ACKS:
            return [first]
        acks = [first, *(item for item in self._outbox if item[0] in ACKS)]
        others = [item for item in self._outbox if item[0] not in ACKS]
        self._outbox.clear()
        self._outbox.extend(others)
        return [merge_acks(acks)]


class WarmSocket:
    """A warm agent's realtime connection before it has a project: opened with the machine's warm key (which
    the endpoint accepts at the handshake and every channel policy refuses), joined to nothing, opened again
    if it drops while the agent waits. At the claim ``take()`` hands it to ``RealtimeSync``, which joins
    ``project:{id}`` on it at once with the assignment's key instead of opening a socket then. After
    ``WARM_CONNECT_ATTEMPTS`` failures in a row (an endpoint that refuses the key) it gives up: the agent then
    connects once assigned, as a cold one does."""

    def __init__(self, url: str, key: str, *, check_interval: float = 1.0) -> None:
        self.url, self._key, self._interval = url, key, check_interval
        self._client: AsyncRealtimeClient | None = None
        self._taken = False
        self.connects = 0

    def take(self) -> AsyncRealtimeClient | None:
        """The open client, if there is one: the caller owns it from now on, and ``run`` ends."""
        self._taken = True
        client = self._client
        if client is None or not client.is_connected:
            return None  # run() closes it
        self._client = None
        return client

    async def run(self) -> None:
        failures = 0
        try:
            while not self._taken and failures < WARM_CONNECT_ATTEMPTS:
                failures = 0 if await self._hold() else failures + 1
                if not self._taken:
                    await asyncio.sleep(min(MAX_BACKOFF_SECONDS, 0.5 * 2**failures) * random.uniform(0.8, 1.2))  # noqa: S311
            if failures >= WARM_CONNECT_ATTEMPTS:
                logger.warning("warm realtime connection given up; the agent connects once assigned")
        finally:
            if self._client is not None:
                await _close(self._client)
                self._client = None

    async def _hold(self) -> bool:
        """Connect, then wait while the socket stays open and nobody took it; False when it could not connect."""
        client = self._client = _new_client(self.url, self._key)
        try:
            await client.connect()
        except Exception as error:
            logger.info("warm realtime connection failed", extra={"error": type(error).__name__})
            return False
        finally:
            await self._release(client)
        if self._client is not client:
            return True  # taken while it connected: closed, the agent connects as assigned
        self.connects += 1
        logger.info("realtime connected; waiting for an assignment", extra={"connects": self.connects})
        while client.is_connected and not self._taken:
            await asyncio.sleep(self._interval)
        await self._release(client)
        return True

    async def _release(self, client: AsyncRealtimeClient) -> None:
        """Close ``client`` unless it is open and still kept (or already taken)."""
        if self._client is client and not (client.is_connected and not self._taken):
            self._client = None
            await _close(client)


def _new_client(url: str, key: str) -> AsyncRealtimeClient:
    """One connection's client: this module owns reconnection (see the module's docstring)."""
    from realtime import AsyncRealtimeClient  # lazy: keeps pydantic out until it is needed

    return AsyncRealtimeClient(url, token=key, auto_reconnect=False, max_retries=1)


async def _close(client: AsyncRealtimeClient) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), 5)


_CHANNEL_OPTIONS: Any = {
    "config": {
        "broadcast": {"self": False, "ack": False},
        "presence": {"key": "", "enabled": False},
        "private": True,
    }
}
