"""Token buckets that keep each (action, machine) pair under the provider's rate limit.

Fly documents 1 request per second per action per machine (bursts of 3) and 5 per second for
"get machine" (bursts of 10). The pacer makes the caller wait instead of drawing a 429. It is
per process: several worker processes each keep their own buckets, so the limit holds per
process; a shared (Redis) bucket would be needed to hold it across them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: int


@dataclass
class _Bucket:
    tokens: float
    updated: float


class ActionPacer:
    """Reserve a token per request; sleep outside the lock until the reservation is due."""

    _PRUNE_EVERY = 1024

    def __init__(
        self,
        *,
        default: Limit,
        limits: Mapping[str, Limit] | None = None,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._default = default
        self._limits = dict(limits or {})
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._new_keys = 0
        self._lock = threading.Lock()

    @property
    def tracked(self) -> int:
        """How many (action, scope) buckets are held."""
        return len(self._buckets)

    def limit_for(self, action: str) -> Limit:
        return self._limits.get(action, self._default)

    def acquire(self, action: str, scope: str) -> float:
        """Take one token for ``action`` on ``scope``; return the seconds slept for it."""
        limit = self.limit_for(action)
        key = (action, scope)
        with self._lock:
            now = self._clock()
            if key not in self._buckets:
                self._new_keys += 1
                if self._new_keys % self._PRUNE_EVERY == 0:
                    self._prune(now)
            tokens = self._refilled(key, limit, now) - 1
            self._buckets[key] = _Bucket(tokens=tokens, updated=now)
        delay = -tokens / limit.rate if tokens < 0 else 0.0
        if delay > 0:
            self._sleep(delay)
        return delay

    def _refilled(self, key: tuple[str, str], limit: Limit, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return float(limit.burst)
        return min(float(limit.burst), bucket.tokens + (now - bucket.updated) * limit.rate)

    def _prune(self, now: float) -> None:
        # Full buckets carry no history worth keeping (machines long gone, for instance).
        full = [
            key
            for key in self._buckets
            if self._refilled(key, self.limit_for(key[0]), now) >= self.limit_for(key[0]).burst
        ]
        for key in full:
            del self._buckets[key]
