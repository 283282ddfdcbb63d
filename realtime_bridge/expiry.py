"""Channel token expiry at the expiry moment, as Realtime's ``confirm_token`` timer does it.

supabase/realtime (``lib/realtime_web/channels/realtime_channel.ex``) arms a timer at every join and token
refresh for ``min(5 minutes, exp - now)``; when it fires on an expired token the channel gets a ``system``
error ``Token has expired N seconds ago`` and closes. Here one timer per channel fires at ``exp`` itself
(re-checking earlier than that finds nothing new: a token only changes through a refresh, which re-arms).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

Expire = Callable[[], Coroutine[Any, Any, None]]


def delay(exp: int, now: float) -> float:
    """Seconds from ``now`` to the whole second a token of expiry ``exp`` stops being accepted."""
    return max(0.0, exp - now)


class ExpiryTimers:
    """The expiry timers of one socket's channels, by channel key."""

    def __init__(self) -> None:
        self._handles: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def arm(self, key: str, exp: int, expire: Expire, *, now: float | None = None) -> asyncio.TimerHandle:
        """(Re)arm ``key``'s timer to run ``expire()`` at ``exp`` (wall clock seconds)."""
        self.cancel(key)
        wait = delay(exp, time.time() if now is None else now)
        handle = asyncio.get_running_loop().call_later(wait, self._fire, key, expire)
        self._handles[key] = handle
        return handle

    def _fire(self, key: str, expire: Expire) -> None:
        self._handles.pop(key, None)
        task = asyncio.get_running_loop().create_task(expire())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def cancel(self, key: str) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def armed(self, key: str) -> asyncio.TimerHandle | None:
        return self._handles.get(key)

    def cancel_all(self) -> None:
        for key in list(self._handles):
            self.cancel(key)
