"""The limit logic alone (realtime_bridge/limits.py): counters and windows with time injected."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from realtime_bridge import limits
from realtime_bridge.checks import check_limits_profile
from realtime_bridge.limits import LocalTicks, PresenceWindow, RateCounter, TenantLimits


def test_the_average_is_events_a_second_over_the_ticks_kept():
    assert limits.average([500]) == 100.0
    assert limits.average([500, 0, 0, 0]) == 25.0
    assert limits.average([]) == 0.0


def test_a_counter_triggers_at_the_limit_and_clears_under_it():
    counter = RateCounter(limit=100)
    counter.close_tick([499])
    assert not counter.triggered
    counter.close_tick([500])
    assert counter.triggered
    counter.close_tick([0, 500])  # the next quiet tick halves the average
    assert not counter.triggered


def test_a_counter_keeps_at_most_twelve_ticks():
    counter = RateCounter(limit=100)
    counter.close_tick([600] * 3 + [0] * 20)
    assert len(counter.buckets) == limits.MAX_BUCKETS
    assert limits.average(counter.buckets) == 30.0


def test_an_unlimited_counter_counts_nothing():
    counter = RateCounter(limit=math.inf)
    counter.add(10_000)
    assert counter.take() == 0


def test_the_presence_window_allows_five_calls_then_refuses_until_it_ends():
    window = PresenceWindow(max_calls=5, window=30.0)
    assert [window.allow(now) for now in (0, 1, 2, 3, 4)] == [True] * 5
    assert not window.allow(29.9)
    assert not window.allow(30.0)  # the window ends strictly after reset_at (Realtime compares with >)
    assert window.allow(30.1)
    assert window.count == 1


def test_an_unlimited_presence_window_never_refuses():
    window = PresenceWindow(max_calls=math.inf, window=30.0)
    assert all(window.allow(0.0) for _ in range(100))


async def test_tenant_ticks_share_counts_of_the_last_minute_only():
    tenant = TenantLimits(limits.PROFILES["supabase"], LocalTicks())
    tenant.events.add(600)  # 120 a second over the first tick: triggered
    await tenant.tick(now=105.0)
    assert tenant.events.triggered
    assert list(tenant.events.buckets) == [600]
    await tenant.tick(now=110.0)  # a quiet tick: 60 a second
    assert not tenant.events.triggered
    for second in range(115, 200, 5):
        await tenant.tick(now=float(second))
    assert len(tenant.events.buckets) == limits.MAX_BUCKETS
    assert sum(tenant.events.buckets) == 0


async def test_two_processes_decide_on_their_sum():
    """Each process counts under the limit; together they are over it (a tenant-wide limit)."""
    store = LocalTicks()
    one = TenantLimits(limits.PROFILES["supabase"], store)
    two = TenantLimits(limits.PROFILES["supabase"], store)
    one.events.add(300)
    two.events.add(300)
    await one.tick(now=105.0)
    await two.tick(now=105.0)
    assert two.events.triggered
    await one.tick(now=110.0)
    assert one.events.triggered is False  # (600 + 0) / 2 ticks / 5 s = 60 a second


def test_a_setting_replaces_one_number_of_the_profile(settings):
    settings.REALTIME_LIMITS_PROFILE = "supabase"
    settings.REALTIME_MAX_EVENTS_PER_SECOND = 7
    profile = limits.profile_from_settings()
    assert profile.max_events_per_second == 7
    assert profile.max_joins_per_second == 100


def test_an_unknown_profile_is_refused_by_name(settings):
    settings.REALTIME_LIMITS_PROFILE = "fast"
    with pytest.raises(ValueError, match="REALTIME_LIMITS_PROFILE must be one of"):
        limits.profile_from_settings()


def test_the_system_check_names_an_unknown_profile(settings):
    settings.REALTIME_LIMITS_PROFILE = "fast"
    assert [error.id for error in check_limits_profile(None)] == ["realtime_bridge.E001"]
    settings.REALTIME_LIMITS_PROFILE = "unlimited"
    assert check_limits_profile(None) == []


def test_presence_is_over_only_strictly_above_its_limit():
    counter = RateCounter(limit=20)
    counter.close_tick([100])  # 20 a second: at the limit
    assert counter.triggered and not counter.over
    counter.close_tick([105])
    assert counter.over


def test_a_profile_with_only_a_presence_rate_still_counts_ticks():
    profile = limits.PROFILES["unlimited"]
    assert not profile.counts_rates
    assert replace(profile, max_presence_events_per_second=20).counts_rates
