"""Realtime limits as a named profile, counted the way Supabase Realtime counts them.

``REALTIME_LIMITS_PROFILE`` picks the numbers: ``supabase`` (the defaults a Supabase project's tenant gets,
read in supabase/realtime ``config/runtime.exs`` and ``lib/realtime/api/tenant.ex``) or ``unlimited`` (local
benchmarks). A ``REALTIME_MAX_*`` setting overrides one number of the profile.

How Supabase counts (``lib/realtime/rate_counter/rate_counter.ex``, ``lib/realtime/tenants.ex``):

* events and joins are per tenant (here: the whole endpoint, every process), in 5 s ticks; at each tick the
  average over the last (up to) 12 ticks, in events a second, is compared with the limit. At or over it the
  limit is *triggered* until a later tick's average falls under it. Between ticks the state does not change.
* an event is a client broadcast (one), plus one per channel it is delivered to (``message_dispatcher.ex``
  sends ``:update_rate_counter`` to every receiver), plus an unknown client message on a joined channel. A
  receiving channel that sees the limit triggered is shut with ``Too many messages per second``.
* presence: each channel may send 5 presence messages (track or untrack) per 30 s window
  (``presence_handler.ex`` ``limit_client_presence_event``); the next one shuts the channel with
  ``Client presence rate limit exceeded``. Presence diffs delivered count per tenant; over the presence events
  limit a track shuts the channel with ``Too many presence messages per second``.

With several web processes (REDIS_URL) the per-tick counts live in Redis: each process adds what it counted
to the key of the tick that just ended (``INCRBY``, one round trip per tick and counter) and reads the last
12 ticks back, so every process decides on the tenant-wide average, one tick late at most, as Supabase's
own cluster does with its per-node GenCounters.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

from django.conf import settings

from realtime_bridge import metrics

logger = logging.getLogger(__name__)

TICK_SECONDS = 5.0
MAX_BUCKETS = 12
UNLIMITED = math.inf

TOO_MANY_MESSAGES = "Too many messages per second"
TOO_MANY_JOINS = "ClientJoinRateLimitReached: Too many joins per second"
TOO_MANY_CHANNELS = "ChannelRateLimitReached: Too many channels"
TOO_MANY_USERS = "ConnectionRateLimitReached: Too many connected users"
CLIENT_PRESENCE = "Client presence rate limit exceeded"
TOO_MANY_PRESENCE = "Too many presence messages per second"
TRACK_TOO_BIG = "Track message size exceeded"
PAYLOAD_TOO_BIG = "Payload size exceeded"
JOIN_LIMITS = frozenset({TOO_MANY_JOINS, TOO_MANY_CHANNELS, TOO_MANY_USERS})


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    max_events_per_second: float
    max_joins_per_second: float
    max_channels_per_client: float
    max_concurrent_users: float
    max_presence_events_per_second: float
    client_presence_max_calls: float
    client_presence_window_seconds: float
    max_payload_bytes: int

    @property
    def counts_rates(self) -> bool:
        rates = (self.max_events_per_second, self.max_joins_per_second, self.max_presence_events_per_second)
        return any(math.isfinite(rate) for rate in rates)


PROFILES = {
    # A tenant's defaults (runtime.exs TENANT_MAX_*, CLIENT_PRESENCE_*; tenant.ex field defaults). The
    # payload limit is our REALTIME_MAX_PAYLOAD_BYTES default, 3000 KB like max_payload_size_in_kb.
    "supabase": Profile(
        name="supabase",
        max_events_per_second=100,
        max_joins_per_second=100,
        max_channels_per_client=100,
        max_concurrent_users=200,
        max_presence_events_per_second=1000,
        client_presence_max_calls=5,
        client_presence_window_seconds=30.0,
        max_payload_bytes=3000 * 1024,
    ),
    # Every rate lifted; the per-socket caps stay (they guard the server's memory, and no benchmark needs
    # more than 100 channels on one socket or 3000 KB in one message).
    "unlimited": Profile(
        name="unlimited",
        max_events_per_second=UNLIMITED,
        max_joins_per_second=UNLIMITED,
        max_channels_per_client=100,
        max_concurrent_users=UNLIMITED,
        max_presence_events_per_second=UNLIMITED,
        client_presence_max_calls=UNLIMITED,
        client_presence_window_seconds=30.0,
        max_payload_bytes=3000 * 1024,
    ),
}

# settings name -> Profile field it overrides
OVERRIDES = {
    "REALTIME_MAX_EVENTS_PER_SECOND": "max_events_per_second",
    "REALTIME_MAX_JOINS_PER_SECOND": "max_joins_per_second",
    "REALTIME_MAX_CHANNELS_PER_SOCKET": "max_channels_per_client",
    "REALTIME_MAX_CONCURRENT_USERS": "max_concurrent_users",
    "REALTIME_MAX_PRESENCE_EVENTS_PER_SECOND": "max_presence_events_per_second",
    "REALTIME_CLIENT_PRESENCE_MAX_CALLS": "client_presence_max_calls",
    "REALTIME_MAX_PAYLOAD_BYTES": "max_payload_bytes",
}


def profile_from_settings() -> Profile:
    """The chosen profile with any ``REALTIME_MAX_*`` setting that is not None laid over it."""
    name = getattr(settings, "REALTIME_LIMITS_PROFILE", "supabase")
    if name not in PROFILES:
        raise ValueError(f"REALTIME_LIMITS_PROFILE must be one of {sorted(PROFILES)}, not {name!r}")
    changes = {
        field_name: getattr(settings, setting)
        for setting, field_name in OVERRIDES.items()
        if getattr(settings, setting, None) is not None
    }
    return replace(PROFILES[name], **changes)


# --- pure counters ------------------------------------------------------------------------------------


def average(buckets: Iterable[int], tick_seconds: float = TICK_SECONDS) -> float:
    """Events a second over the ticks kept (RateCounter's ``avg``)."""
    counts = list(buckets)
    return sum(counts) / len(counts) / tick_seconds if counts else 0.0


@dataclass
class RateCounter:
    """One tenant-wide counter: ``add`` between ticks, ``close_tick`` at each tick with the ticks' totals."""

    limit: float
    pending: int = 0
    buckets: deque[int] = field(default_factory=lambda: deque(maxlen=MAX_BUCKETS))
    triggered: bool = False

    @property
    def over(self) -> bool:
        """Strictly over the limit (presence_handler.ex compares the average with ``>``, not ``>=``)."""
        return average(self.buckets) > self.limit

    def add(self, count: int = 1) -> None:
        if math.isfinite(self.limit):
            self.pending += count

    def take(self) -> int:
        count, self.pending = self.pending, 0
        return count

    def close_tick(self, totals: Iterable[int]) -> None:
        """``totals``: the tenant's counts of the last ticks, newest first. Triggered at or over the limit,
        cleared under it."""
        self.buckets = deque(list(totals)[:MAX_BUCKETS], maxlen=MAX_BUCKETS)
        self.triggered = average(self.buckets) >= self.limit


@dataclass
class PresenceWindow:
    """One channel's client presence budget: ``max_calls`` per window that starts at its first call."""

    max_calls: float
    window: float
    count: int = 0
    reset_at: float | None = None

    def allow(self, now: float) -> bool:
        if not math.isfinite(self.max_calls):
            return True
        if self.reset_at is None or now > self.reset_at:
            self.count, self.reset_at = 1, now + self.window
            return True
        if self.count >= self.max_calls:
            return False
        self.count += 1
        return True


# --- where the per-tick counts live ----------------------------------------------------------------


class TickStore(Protocol):
    async def add_and_read(self, name: str, tick: int, count: int) -> list[int]:
        """Add ``count`` to tick ``tick`` of counter ``name``; the totals of ticks ``tick`` back to
        ``tick - MAX_BUCKETS + 1`` that anyone counted in, newest first."""
        ...


@dataclass
class LocalTicks:
    """One process: the endpoint is the tenant."""

    ticks: dict[tuple[str, int], int] = field(default_factory=dict)
    first: dict[str, int] = field(default_factory=dict)

    async def add_and_read(self, name: str, tick: int, count: int) -> list[int]:
        self.first.setdefault(name, tick)
        self.ticks[(name, tick)] = self.ticks.get((name, tick), 0) + count
        for old in [key for key in self.ticks if key[0] == name and key[1] <= tick - MAX_BUCKETS]:
            del self.ticks[old]
        oldest = max(self.first[name], tick - MAX_BUCKETS + 1)
        return [self.ticks.get((name, t), 0) for t in range(tick, oldest - 1, -1)]


class RedisTicks:
    """Every web process of the deployment: one Redis key per counter and tick, kept a little over a minute."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as aioredis

        self.client = aioredis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self.prefix = prefix

    async def add_and_read(self, name: str, tick: int, count: int) -> list[int]:
        keys = [f"{self.prefix}:{name}:{t}" for t in range(tick, tick - MAX_BUCKETS, -1)]
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.incrby(keys[0], count)
            pipe.expire(keys[0], int(TICK_SECONDS * (MAX_BUCKETS + 2)))
            pipe.mget(keys)
            *_, values = await pipe.execute()
        totals: list[int | None] = [int(v) if v is not None else None for v in values]
        # Ticks before anyone counted are not part of the average (a fresh RateCounter has short buckets).
        while totals and totals[-1] is None:
            totals.pop()
        return [t or 0 for t in totals]


# --- the endpoint's counters -----------------------------------------------------------------------


@dataclass
class TenantLimits:
    """The tenant-wide counters of one endpoint process; ``tick`` runs every TICK_SECONDS."""

    profile: Profile
    store: TickStore
    events: RateCounter = field(init=False)
    joins: RateCounter = field(init=False)
    presence: RateCounter = field(init=False)

    def __post_init__(self) -> None:
        self.events = RateCounter(self.profile.max_events_per_second)
        self.joins = RateCounter(self.profile.max_joins_per_second)
        self.presence = RateCounter(self.profile.max_presence_events_per_second)

    def counters(self) -> dict[str, RateCounter]:
        return {"events": self.events, "joins": self.joins, "presence": self.presence}

    async def tick(self, now: float) -> None:
        """Close the tick that ``now`` ends (wall-clock seconds) for every counter with a finite limit."""
        tick = int(now // TICK_SECONDS) - 1
        for name, counter in self.counters().items():
            if math.isfinite(counter.limit):
                counter.close_tick(await self.store.add_and_read(name, tick, counter.take()))
                metrics.tenant_rate(name, average(counter.buckets))

    def presence_window(self) -> PresenceWindow:
        return PresenceWindow(self.profile.client_presence_max_calls, self.profile.client_presence_window_seconds)


def tenant_limits() -> TenantLimits:
    profile = profile_from_settings()
    redis_url = getattr(settings, "REDIS_URL", "")
    # One tenant = one deployment: its processes share the database, whose name keys the counters (test runs
    # on one Redis, each with its own database, stay apart).
    prefix = f"velocity:realtime:limits:{settings.DATABASES['default']['NAME']}"
    store: TickStore = RedisTicks(redis_url, prefix) if redis_url and profile.counts_rates else LocalTicks()
    return TenantLimits(profile, store)


async def run_ticks(limits: TenantLimits) -> None:
    """Close a tick every TICK_SECONDS, aligned to the wall clock so all processes share tick numbers."""
    while True:
        now = time.time()
        await asyncio.sleep(TICK_SECONDS - now % TICK_SECONDS + 0.05)
        try:
            await limits.tick(time.time())
        except Exception:  # Redis away: keep the last decision, count again at the next tick
            logger.warning("realtime limits tick failed", exc_info=True)
