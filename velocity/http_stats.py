"""In-process API request statistics for the operator dashboard: error rate and response time percentiles.

The request log middleware records every ``/api/`` request here. Prometheus keeps the long history;
this is a short window the dashboard can read without a metrics server (one process's view).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

WINDOW_SECONDS = 300
MAX_SAMPLES = 20_000
TRACKED_PREFIX = "/api/"

_samples: deque[tuple[float, int, float]] = deque(maxlen=MAX_SAMPLES)


@dataclass(frozen=True)
class ApiStats:
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return None if not self.requests else self.errors / self.requests


def record(path: str, status: int, duration_ms: float) -> None:
    if path.startswith(TRACKED_PREFIX):
        _samples.append((time.monotonic(), status, duration_ms))


def reset() -> None:
    _samples.clear()


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


def api_stats(window: float = WINDOW_SECONDS) -> ApiStats:
    """Requests in the last ``window`` seconds; an error is a 5xx answer (4xx are the callers' mistakes)."""
    since = time.monotonic() - window
    recent = [(status, ms) for at, status, ms in list(_samples) if at >= since]
    durations = sorted(ms for _, ms in recent)
    errors = sum(1 for status, _ in recent if status >= 500)
    return ApiStats(len(recent), errors, _percentile(durations, 0.5), _percentile(durations, 0.95))
