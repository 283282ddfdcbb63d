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
