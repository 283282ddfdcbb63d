"""The operator mirror of the endpoint's broadcasts, sent off the sender's path.

With Redis each mirrored broadcast is two channel-layer sends (the `ops` group and the project's group),
a Redis round trip each; awaited in the sender's frame loop they held every next frame of the socket
back. One task per event loop sends them instead, in order. Past ``MAX_WAITING`` waiting events (Redis
slow or away), new ones are dropped and logged: the operator views lose a line, the sockets nothing.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Awaitable, Callable

from realtime_bridge.events import Event
from realtime_bridge.peers import raise_if_cancelled

logger = logging.getLogger(__name__)

MAX_WAITING = 10_000

Send = Callable[[Event], Awaitable[None]]


class MirrorQueue:
    def __init__(self, send: Send) -> None:
        self.send = send
        self.waiting: deque[Event] = deque()
        self.dropped = 0
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def put(self, event: Event) -> None:
        if len(self.waiting) >= MAX_WAITING:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("ops mirror behind: dropping mirrored broadcasts")
            return
        self.waiting.append(event)
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.waiting:
                await self.send(self.waiting.popleft())
                raise_if_cancelled()
            self.dropped = 0


_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MirrorQueue] = weakref.WeakKeyDictionary()


def send_soon(event: Event, send: Send) -> None:
    """Queue ``event`` for the running loop's mirror task (``send`` is used when the queue is created)."""
    loop = asyncio.get_running_loop()
    queue = _queues.get(loop)
    if queue is None:
        queue = _queues[loop] = MirrorQueue(send)
    queue.put(event)
