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
from rest_framework.throttling import BaseThrottle, ScopedRateThrottle, SimpleRateThrottle

from velocity.cache import Window, count_in_window, count_in_windows


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
        window = self.window(request, view)
        if window is None:
            return True
        return self.settle(*count_in_window(self.cache, *window))

    def window(self, request: Request, view: Any) -> Window | None:
        """The counters this request adds to (``count_in_window``'s arguments), or None if it is not limited."""
        if self.rate is None:
            return None
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return None
        self.now = self.timer()
        number = int(self.now // self.duration)
        self.elapsed = self.now - number * self.duration
        self.current_key = f"{self.key}:{number}"
        return self.current_key, f"{self.key}:{number - 1}", 2 * math.ceil(self.duration)

    def settle(self, current: int, previous: int) -> bool:
        """Whether the request fits, given the counters with it added; a refused one is taken back out."""
        self.current, self.previous = current, previous
        if window_estimate(previous, current, self.elapsed, self.duration) <= self.num_requests:
            return True
        self.cache.decr(self.current_key)  # a refused request does not count against the next ones
        self.current -= 1
        return False

    def wait(self) -> float | None:
        return seconds_until_allowed(self.previous, self.current, self.num_requests, self.elapsed, self.duration)


class UserScopedThrottle(ScopedRateThrottle, SlidingWindowThrottle):
    """Per user (per IP when anonymous), with the view's scope: creates are tighter than reads."""

    allow_request = SlidingWindowThrottle.allow_request

    def window(self, request: Request, view: Any) -> Window | None:
        self.scope = getattr(view, self.scope_attr, None)  # the scope is the view's: known only now
        if not self.scope:
            return None
        self.rate = self.get_rate()
        num_requests, duration = self.parse_rate(self.rate)
        if num_requests is None or duration is None:
            return None
        self.num_requests, self.duration = num_requests, duration
        return super().window(request, view)


class IPThrottle(SlidingWindowThrottle):
    """Per client address across every endpoint, whoever the token says they are."""

    scope = "ip"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class ApiThrottle(BaseThrottle):
    """The API's throttle: ``UserScopedThrottle`` and ``IPThrottle`` counted in one cache round trip (two, one
    after the other, were a twentieth of a list request's CPU under load). A request refused by either is
    refused; ``Retry-After`` is the longer of their waits, as DRF gives for two throttles."""

    limits: tuple[type[SlidingWindowThrottle], ...] = (UserScopedThrottle, IPThrottle)

    def __init__(self) -> None:
        self.waits: list[float | None] = []

    def allow_request(self, request: Request, view: Any) -> bool:
        limits = [cls() for cls in self.limits]
        pending = [(limit, window) for limit in limits if (window := limit.window(request, view)) is not None]
        if not pending:
            return True
        counted = count_in_windows(pending[0][0].cache, [window for _, window in pending])
        refused = [limit for (limit, _), counts in zip(pending, counted, strict=True) if not limit.settle(*counts)]
        self.waits = [limit.wait() for limit in refused]
        return not refused

    def wait(self) -> float | None:
        return max((wait for wait in self.waits if wait is not None), default=None)
