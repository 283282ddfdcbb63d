"""The API's rate limits: per user (or IP) and scope, and per client address.

Both count in a sliding window of two fixed windows (the previous one weighted by how much of it still
overlaps the last ``duration`` seconds), so a request costs one cache round trip whatever the rate. DRF's own
throttles keep every request's timestamp of the last window in one pickled list, read and rewritten on each
request: 3,000 entries for the IP limit's 3,000 a minute, and a hot spot under load (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle, SimpleRateThrottle

from velocity.cache import count_in_window


def window_estimate(previous: int, current: int, elapsed: float, duration: float) -> float:
    """Requests in the last ``duration`` seconds, ``elapsed`` seconds into the current window."""
    return previous * (1 - elapsed / duration) + current


def seconds_until_allowed(previous: int, current: int, limit: int, elapsed: float, duration: float) -> float:
    """How long until one more request fits, with ``current`` counted so far in this window."""
    room = limit - current - 1
    if room >= 0:
        if previous <= room:
            return 0.0
        return max(duration * (1 - room / previous) - elapsed, 0.0)
    # Not in this window: in the next, this window's count is the one that fades.
    fades = duration * (1 - (limit - 1) / current) if current else 0.0
    return duration - elapsed + max(fades, 0.0)


class SlidingWindowThrottle(SimpleRateThrottle):
    num_requests: int
    duration: int
    previous = current = 0
    elapsed = 0.0

    def allow_request(self, request: Request, view: Any) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        current_key = f"{self.key}:{window}"
        timeout = 2 * math.ceil(self.duration)
        self.current, self.previous = count_in_window(self.cache, current_key, f"{self.key}:{window - 1}", timeout)
        self.elapsed = self.now - window * self.duration
        if window_estimate(self.previous, self.current, self.elapsed, self.duration) <= self.num_requests:
            return True
        self.cache.decr(current_key)  # a refused request does not count against the next ones
        self.current -= 1
        return False

    def wait(self) -> float | None:
        return seconds_until_allowed(self.previous, self.current, self.num_requests, self.elapsed, self.duration)


class UserScopedThrottle(ScopedRateThrottle, SlidingWindowThrottle):
    """Per user (per IP when anonymous), with the view's scope: creates are tighter than reads."""


class IPThrottle(SlidingWindowThrottle):
    """Per client address across every endpoint, whoever the token says they are."""

    scope = "ip"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
