"""Django's Redis cache with one connection pool per process instead of one per request.

Django keeps a cache object per request context under ASGI (``caches`` is context-local), and
``RedisCache`` builds its client, with a fresh connection pool, on first use: every request therefore opened
a new TCP connection to Redis for the throttles' reads and writes, about a quarter of a list request's CPU
under 16 concurrent clients (docs/benchmarks.md, *REST under load*). redis-py's pools are thread-safe, so
the client is shared by every cache object of the process with the same servers and options.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

CLEAR_BATCH = 1000
Window = tuple[str, str, int]  # a sliding window's current and previous counter keys, and their expiry in seconds
_clients: dict[tuple[tuple[str, ...], str], RedisCacheClient] = {}
_lock = threading.Lock()


def shared_client(servers: list[str], options: dict[str, Any]) -> RedisCacheClient:
    """The process's client for ``servers`` with ``options``, made once."""
    key = (tuple(servers), repr(sorted(options.items())))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = RedisCacheClient(servers, **options)
    return client


class SharedPoolRedisCache(RedisCache):
    """``RedisCache`` whose client (and connection pool) is the process's, not the request's.

    Its ``clear`` deletes only this cache's keys: Django's is ``FLUSHDB``, and the same Redis database holds the
    channel layer's groups (a server flushed out of ``rt.pg`` hears no row change until it rejoins), the task
    queue and the realtime limits' counters.
    """

    @cached_property
    def _cache(self) -> RedisCacheClient:
        # RedisCache.__init__ sets both; django-stubs does not declare them.
        return shared_client(getattr(self, "_servers"), getattr(self, "_options"))  # noqa: B009

    def _writer(self) -> Any:
        """The process's redis-py client for writes, made once: Django builds one per call (about a tenth of a
        throttle's CPU), and this cache object itself lasts one request under ASGI."""
        shared = self._cache
        writer = getattr(shared, "velocity_writer", None)
        if writer is None:
            writer = shared.velocity_writer = shared.get_client(None, write=True)  # type: ignore[attr-defined]
        return writer

    def count_in_window(self, current_key: str, previous_key: str, timeout: int) -> tuple[int, int]:
        """``count_in_window`` in one round trip; the counters are plain Redis integers (never pickled)."""
        return self.count_in_windows([(current_key, previous_key, timeout)])[0]

    def count_in_windows(self, windows: Sequence[Window]) -> list[tuple[int, int]]:
        """Several windows' ``count_in_window`` in one round trip."""
        pipe: Any = self._writer().pipeline(transaction=False)
        for current_key, previous_key, timeout in windows:
            current = self.make_and_validate_key(current_key)
            pipe.incr(current).expire(current, timeout).get(self.make_and_validate_key(previous_key))
        replies = pipe.execute()
        return [(int(replies[i]), int(replies[i + 2] or 0)) for i in range(0, len(replies), 3)]

    def clear(self) -> None:
        if not self.key_prefix:
            raise ValueError("SharedPoolRedisCache needs a KEY_PREFIX: its clear() deletes the keys under it")
        client = self._cache.get_client(None, write=True)
        batch: list[Any] = []
        for key in client.scan_iter(match=f"{self.key_prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= CLEAR_BATCH:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)


def count_in_windows(cache: Any, windows: Sequence[Window]) -> list[tuple[int, int]]:
    """``count_in_window`` for each ``(current_key, previous_key, timeout)``: one round trip on Redis."""
    one_trip = getattr(cache, "count_in_windows", None)
    if one_trip is not None:
        return list(one_trip(windows))
    return [count_in_window(cache, *window) for window in windows]


def count_in_window(cache: Any, current_key: str, previous_key: str, timeout: int) -> tuple[int, int]:
    """Add one to ``current_key`` and read ``previous_key``: the two counters of a sliding-window rate limit.

    On the Redis cache this is one round trip (INCR, EXPIRE, GET in a pipeline); elsewhere Django's cache API.
    """
    one_trip = getattr(cache, "count_in_window", None)  # ``cache`` may be Django's proxy of the real one
    if one_trip is not None:
        return one_trip(current_key, previous_key, timeout)
    if cache.add(current_key, 1, timeout):
        current = 1
    else:
        try:
            current = cache.incr(current_key)
        except ValueError:  # expired between the add and the incr
            cache.set(current_key, 1, timeout)
            current = 1
    return current, int(cache.get(previous_key) or 0)
