"""The Redis cache shares one client (and connection pool) per process across Django's per-request caches."""

from __future__ import annotations

import os
import uuid

from velocity.cache import SharedPoolRedisCache
from velocity.testing import require


def test_cache_objects_of_the_same_servers_share_one_client_and_see_each_others_writes() -> None:
    require(os.environ.get("REDIS_URL"), "the Redis cache needs Redis")
    first = SharedPoolRedisCache("redis://127.0.0.1:6379/11", {})
    second = SharedPoolRedisCache("redis://127.0.0.1:6379/11", {})
    other_db = SharedPoolRedisCache("redis://127.0.0.1:6379/12", {})
    assert first._cache is second._cache
    assert other_db._cache is not first._cache
    key = f"test-{uuid.uuid4().hex}"
    first.set(key, {"history": [1.5, 2.5]}, 30)
    assert second.get(key) == {"history": [1.5, 2.5]}
    assert other_db.get(key) is None
    second.delete(key)


def test_clearing_the_cache_leaves_the_other_users_of_its_redis_database_alone() -> None:
    """Django's RedisCache.clear() is FLUSHDB; ours deletes its own keys, so the channel layer's groups, the task
    queue and the limits' counters in the same database survive (a test's clear once cut a server out of rt.pg)."""
    require(os.environ.get("REDIS_URL"), "the Redis cache needs Redis")
    cache = SharedPoolRedisCache("redis://127.0.0.1:6379/11", {"KEY_PREFIX": "velocity-cache"})
    neighbour = f"asgi:group:test-{uuid.uuid4().hex}"
    client = cache._cache.get_client(None, write=True)
    client.set(neighbour, b"member", ex=60)
    cache.set("throttle-history", [1.0], 30)
    cache.clear()
    assert cache.get("throttle-history") is None
    assert client.get(neighbour) == b"member"
    client.delete(neighbour)
