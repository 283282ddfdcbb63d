"""Django's Redis cache with one connection pool per process instead of one per request.

Django keeps a cache object per request context under ASGI (``caches`` is context-local), and
``RedisCache`` builds its client, with a fresh connection pool, on first use: every request therefore opened
a new TCP connection to Redis for the throttles' reads and writes, about a quarter of a list request's CPU
under 16 concurrent clients (docs/benchmarks.md, *REST under load*). redis-py's pools are thread-safe, so
the client is shared by every cache object of the process with the same servers and options.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

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
    """``RedisCache`` whose client (and connection pool) is the process's, not the request's."""

    @cached_property
    def _cache(self) -> RedisCacheClient:
        # RedisCache.__init__ sets both; django-stubs does not declare them.
        return shared_client(getattr(self, "_servers"), getattr(self, "_options"))  # noqa: B009
