"""The API's rate limits count in a sliding window: one cache round trip a request, whatever the rate."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from sessions.throttles import seconds_until_allowed, window_estimate
from velocity.cache import SharedPoolRedisCache, count_in_window, count_in_windows
from velocity.testing import require

pytestmark = pytest.mark.django_db


def test_the_estimate_weighs_the_previous_window_by_how_much_of_it_still_overlaps() -> None:
    assert window_estimate(previous=10, current=3, elapsed=0.0, duration=60) == 13
    assert window_estimate(previous=10, current=3, elapsed=30.0, duration=60) == 8
    assert window_estimate(previous=10, current=3, elapsed=60.0, duration=60) == 3


def test_the_wait_is_until_one_more_request_fits() -> None:
    assert seconds_until_allowed(previous=0, current=1, limit=5, elapsed=10, duration=60) == 0
    # 4 room left after this window's 0 and the next request: the previous 8 must fade to 4, half of it, at 30 s.
    assert seconds_until_allowed(previous=8, current=0, limit=5, elapsed=10, duration=60) == pytest.approx(20)
    # This window is full: the next one, once a fifth of this window's 5 has faded (12 s into it).
    assert seconds_until_allowed(previous=0, current=5, limit=5, elapsed=10, duration=60) == pytest.approx(50 + 12)
    assert seconds_until_allowed(previous=3, current=0, limit=0, elapsed=15, duration=60) == pytest.approx(45)


@pytest.fixture
def two_a_minute() -> object:
    cache.clear()
    rates = {**SimpleRateThrottle.THROTTLE_RATES, "sessions": "2/min"}
    with mock.patch.object(SimpleRateThrottle, "THROTTLE_RATES", rates):
        yield
    cache.clear()


def test_a_limit_refuses_past_its_rate_and_lets_requests_through_once_the_window_slides(
    as_user: Callable[..., APIClient], two_a_minute: object
) -> None:
    client = as_user()
    minute = int(time.time() // 60) * 60 + 60  # the start of a window, after the token was issued
    with time_machine.travel(minute, tick=False) as clock:
        assert [client.get("/api/v1/sessions/").status_code for _ in range(3)] == [200, 200, 429]
        assert client.get("/api/v1/sessions/").status_code == 429  # refused requests are not counted
        clock.shift(60)  # the next window: the previous two still weigh 2 at its start
        refused = client.get("/api/v1/sessions/")
        assert refused.status_code == 429
        assert int(refused["Retry-After"]) == 30  # half of the previous window faded: one request fits
        clock.shift(30)
        assert client.get("/api/v1/sessions/").status_code == 200


def test_each_user_has_a_window_of_their_own(as_user: Callable[..., APIClient], two_a_minute: object) -> None:
    first = as_user()
    assert [first.get("/api/v1/sessions/").status_code for _ in range(3)] == [200, 200, 429]
    assert as_user().get("/api/v1/sessions/").status_code == 200  # another user's token


def test_on_redis_the_two_counters_are_one_round_trip_of_plain_integers_that_expire() -> None:
    require(os.environ.get("REDIS_URL"), "the Redis cache needs Redis")
    redis_cache = SharedPoolRedisCache("redis://127.0.0.1:6379/11", {"KEY_PREFIX": "velocity-cache"})
    key = f"throttle-test-{uuid.uuid4().hex}"
    redis_cache.set(f"{key}:0", 7, 30)
    client: Any = redis_cache._cache.get_client(None, write=True)
    with mock.patch.object(type(client), "execute_command", wraps=client.execute_command) as single_commands:
        assert count_in_window(redis_cache, f"{key}:1", f"{key}:0", timeout=120) == (1, 7)
    assert single_commands.call_count == 0  # the pipeline sent all three at once
    assert count_in_window(redis_cache, f"{key}:1", f"{key}:0", timeout=120) == (2, 7)
    raw = redis_cache.make_and_validate_key(f"{key}:1")
    assert client.get(raw) == b"2" and 0 < client.ttl(raw) <= 120
    redis_cache.delete_many([f"{key}:0", f"{key}:1"])


def test_elsewhere_the_counters_use_the_cache_api() -> None:
    key = f"throttle-test-{uuid.uuid4().hex}"
    assert count_in_window(cache, f"{key}:1", f"{key}:0", timeout=120) == (1, 0)
    assert count_in_window(cache, f"{key}:1", f"{key}:0", timeout=120) == (2, 0)
    cache.delete(f"{key}:1")


def test_the_address_limit_counts_every_user_from_one_address(as_user: Callable[..., APIClient]) -> None:
    cache.clear()
    rates = {**SimpleRateThrottle.THROTTLE_RATES, "sessions": "100/min", "ip": "3/min"}
    with mock.patch.object(SimpleRateThrottle, "THROTTLE_RATES", rates):
        assert [as_user().get("/api/v1/sessions/").status_code for _ in range(4)] == [200, 200, 200, 429]
        refused = as_user().get("/api/v1/sessions/")
    cache.clear()
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0


def test_on_redis_both_limits_are_counted_in_one_round_trip() -> None:
    require(os.environ.get("REDIS_URL"), "the Redis cache needs Redis")
    redis_cache = SharedPoolRedisCache("redis://127.0.0.1:6379/11", {"KEY_PREFIX": "velocity-cache"})
    user, address = f"throttle-user-{uuid.uuid4().hex}", f"throttle-ip-{uuid.uuid4().hex}"
    redis_cache.set(f"{address}:0", 5, 30)
    windows = [(f"{user}:1", f"{user}:0", 120), (f"{address}:1", f"{address}:0", 120)]
    pipeline_class: Any = type(redis_cache._writer().pipeline())
    with mock.patch.object(pipeline_class, "execute", autospec=True, side_effect=pipeline_class.execute) as trips:
        assert count_in_windows(redis_cache, windows) == [(1, 0), (1, 5)]
    assert trips.call_count == 1
    assert count_in_windows(cache, [(f"{user}:1", f"{user}:0", 120)]) == [(1, 0)]  # elsewhere, the cache API
    redis_cache.delete_many([key for window in windows for key in window[:2]])
    cache.delete(f"{user}:1")
