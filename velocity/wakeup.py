"""In-process wake-ups keyed by name: a held request sleeps until another thread of the same process says "look now".

Used where one request waits on another's commit (a warm agent's assignment long-poll waits for the create that
claims its machine; a create waits for the agent's ``ready``). A wake-up is a hint, never the truth: the waiter
re-reads the database when woken and every ``recheck`` seconds anyway, so a wake-up lost costs at most one
``recheck`` interval, and nothing waits forever.

With ``REDIS_URL`` (several web processes), a wake-up is also published on Redis and every process that holds a
waiter listens (one daemon thread, started by its first wait), so the waiter may live in another process than
the commit. Without Redis there is one web process, and the in-process registry reaches every waiter.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

T = TypeVar("T")

logger = logging.getLogger(__name__)

CHANNEL = "velocity:wakeup"
LISTEN_RETRY_SECONDS = 1.0
_lock = threading.Lock()
_waiters: dict[str, set[threading.Event]] = {}
_redis: dict[str, Any] = {}  # the publishing client and the listening thread, per process


def wake(key: str) -> int:
    """Wake every thread waiting on ``key``: in this process (returns how many) and, with Redis, in the others."""
    woken = _wake_here(key)  # first: a waiter here need not wait for the round trip to Redis
    if settings.REDIS_URL:
        _publish(key)
    return woken


def _wake_here(key: str) -> int:
    with _lock:
        events = list(_waiters.get(key, ()))
    for event in events:
        event.set()
    return len(events)


def wait_for(check: Callable[[], T | None], *, key: str, timeout: float, recheck: float) -> T | None:
    """``check()``'s first non-None answer, asked at once, on each wake-up of ``key`` and every ``recheck``
    seconds, until ``timeout`` seconds have passed (then None)."""
    deadline = time.monotonic() + timeout
    if settings.REDIS_URL:
        _listen()
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


def _client() -> Any:
    import redis

    with _lock:
        if "client" not in _redis:
            _redis["client"] = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        return _redis["client"]


def _publish(key: str) -> None:
    """Best effort: a wake-up that Redis does not carry is caught by the waiter's recheck."""
    try:
        _client().publish(CHANNEL, key)
    except Exception as error:  # any Redis failure only costs the waiter one recheck
        logger.warning("wake-up not published", extra={"error": type(error).__name__})


def _listen() -> None:
    """Start this process's listener once: it turns every published key into a wake-up here."""
    with _lock:
        if "listener" in _redis:
            return
        _redis["listener"] = threading.Thread(target=_listen_forever, name="wakeup-listener", daemon=True)
    _redis["listener"].start()


def _listen_forever() -> None:
    while True:
        with contextlib.suppress(Exception):
            _relay()
        time.sleep(LISTEN_RETRY_SECONDS)  # Redis went away: listen again (waiters recheck meanwhile)


def _relay() -> None:
    import redis

    pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    for message in pubsub.listen():
        _wake_here(message["data"].decode())
