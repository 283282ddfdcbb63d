"""In-process API request statistics for the operator dashboard: error rate and response time percentiles,
for the API as a whole and per route.

The request log middleware records every ``/api/`` request here, under its route pattern
(``api/v1/sessions/<uuid:session_id>/``, never the raw path). The machine agents' endpoints
(``/api/v1/agent/``) are a group of their own: the assignment long-poll holds a request up to 25 seconds
by design, and counted as API latency it made the API p95 read 25 s permanently. They get their own rows
in ``route_stats`` and stay out of ``api_stats``.

Prometheus keeps the long history; this is a short window the dashboard can read without a metrics
server (one process's view).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

WINDOW_SECONDS = 300
MAX_SAMPLES = 20_000
TRACKED_PREFIX = "/api/"
AGENT_PREFIX = "/api/v1/agent/"
API, AGENT = "api", "agent"
UNMATCHED_ROUTE = "<unmatched>"

# (monotonic time, group, route, status, milliseconds)
_samples: deque[tuple[float, str, str, int, float]] = deque(maxlen=MAX_SAMPLES)


@dataclass(frozen=True)
class ApiStats:
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return None if not self.requests else self.errors / self.requests


@dataclass(frozen=True)
class RouteStats(ApiStats):
    route: str = ""
    group: str = API

    @property
    def is_agent(self) -> bool:
        return self.group == AGENT


def group_of(path: str) -> str | None:
    """``agent`` for the machine agents' endpoints, ``api`` for the rest of the API, None if not tracked."""
    if path.startswith(AGENT_PREFIX):
        return AGENT
    return API if path.startswith(TRACKED_PREFIX) else None


def record(path: str, status: int, duration_ms: float, route: str = UNMATCHED_ROUTE) -> None:
    group = group_of(path)
    if group is not None:
        _samples.append((time.monotonic(), group, route, status, duration_ms))


def reset() -> None:
    _samples.clear()


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


def _recent(window: float) -> list[tuple[str, str, int, float]]:
    since = time.monotonic() - window
    return [(group, route, status, ms) for at, group, route, status, ms in list(_samples) if at >= since]


def _summary(samples: list[tuple[int, float]]) -> tuple[int, int, float | None, float | None]:
    """An error is a 5xx answer (4xx are the callers' mistakes)."""
    durations = sorted(ms for _, ms in samples)
    errors = sum(1 for status, _ in samples if status >= 500)
    return len(samples), errors, _percentile(durations, 0.5), _percentile(durations, 0.95)


def api_stats(window: float = WINDOW_SECONDS) -> ApiStats:
    """API requests in the last ``window`` seconds, the agents' endpoints left out."""
    return ApiStats(*_summary([(status, ms) for group, _, status, ms in _recent(window) if group == API]))


def route_stats(window: float = WINDOW_SECONDS) -> list[RouteStats]:
    """Each route seen in the last ``window`` seconds: the API's busiest first, then the agents'."""
    by_route: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for group, route, status, ms in _recent(window):
        by_route.setdefault((group, route), []).append((status, ms))
    rows = [RouteStats(*_summary(samples), route=route, group=group) for (group, route), samples in by_route.items()]
    return sorted(rows, key=lambda row: (row.is_agent, -row.requests, row.route))
