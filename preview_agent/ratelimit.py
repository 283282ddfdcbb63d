"""The agent's rate limits: one token bucket for dropping log lines and pacing broadcasts, and a
coalescer for requests that may be answered together (``files:manifest_request``)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up (default: one second's worth)."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.capacity, self.clock = rate, burst or rate, clock
        self.tokens, self.updated = self.capacity, clock()

    def try_take(self) -> bool:
        """Take a token if there is one (for what may be dropped)."""
        self._refill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def reserve(self) -> float:
        """Take a token, borrowing ahead if needed; how long to wait before using it (for what must not be
        dropped). Any one-second window then sees at most ``burst + rate`` uses."""
        self._refill()
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


class Coalescer:
    """Answers at most once per ``interval``; requests that come sooner, or while an answer is due and not
    yet sent, share the next answer. None is ever dropped: the last request is always answered, by an
    answer taken after it arrived."""

    def __init__(self, interval: float, *, keep: int = 100, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.keep, self.clock = interval, keep, clock
        self._pending: list[str | None] | None = None
        self._last_answer: float | None = None

    def add(self, request: str | None) -> float | None:
        """Record a request. Returns in how many seconds to answer, or None when an answer is already due
        (this request rides on it)."""
        if self._pending is not None:
            self._pending = [*self._pending, request][-self.keep :]
            return None
        self._pending = [request]
        if self._last_answer is None:
            return 0.0
        return max(0.0, self._last_answer + self.interval - self.clock())

    def take(self) -> list[str | None]:
        """The requests the answer about to be built covers, oldest first; the interval starts now."""
        requests, self._pending = self._pending or [], None
        self._last_answer = self.clock()
        return requests
