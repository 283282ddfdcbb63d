"""One token bucket for the agent's two rate limits: dropping log lines, and pacing broadcasts."""

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
