"""In-process wake-ups keyed by name: a held request sleeps until another thread of the same process says "look now".

Used where one request waits on another's commit (a warm agent's assignment long-poll waits for the create that
claims its machine; a create waits for the agent's ``ready``). A wake-up is a hint, never the truth: the waiter
re-reads the database when woken and every ``recheck`` seconds anyway, so a wake-up lost (or sent by another
web process, which this registry cannot reach) costs at most one ``recheck`` interval, and nothing waits forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_waiters: dict[str, set[threading.Event]] = {}


def wake(key: str) -> int:
    """Wake every thread of this process waiting on ``key``; returns how many were waiting."""
    with _lock:
        events = list(_waiters.get(key, ()))
    for event in events:
        event.set()
    return len(events)


def wait_for(check: Callable[[], T | None], *, key: str, timeout: float, recheck: float) -> T | None:
    """``check()``'s first non-None answer, asked at once, on each wake-up of ``key`` and every ``recheck``
    seconds, until ``timeout`` seconds have passed (then None)."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    with _lock:
        _waiters.setdefault(key, set()).add(event)
    try:
        while (found := check()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            event.wait(min(recheck, left))
            event.clear()
        return found
    finally:
        _forget(key, event)


def _forget(key: str, event: threading.Event) -> None:
    with _lock:
        events = _waiters.get(key)
        if events is not None:
            events.discard(event)
            if not events:
                del _waiters[key]
