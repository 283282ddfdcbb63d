"""The orchestrator's Prometheus metrics, declared once, and the small functions services call to record them.

Realtime counters (messages by event, the edit-to-``file:synced`` lag) live in ``realtime_bridge.metrics``
and are exported alongside these. Gauges that describe the database (sessions by status, machines by state,
the cost of live machines) are computed at scrape time by ``velocity.metrics_exporter``.

Labels take bounded values only: route patterns (never raw paths), Fly operations, enum reasons.
In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) every process writes its own files and a scrape sums them.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

MACHINES_CREATED = Counter(
    "velocity_machines_created_total", "Machines created, by why (a session, the warm pool).", ["reason"]
)
MACHINES_DESTROYED = Counter(
    "velocity_machines_destroyed_total",
    "Machines destroyed, by why (the session's end reason, else who destroyed it).",
    ["reason"],
)
MACHINES_FAILED = Counter("velocity_machines_failed_total", "Machines that failed to launch or run.", ["source"])
SESSIONS_CREATED = Counter("velocity_sessions_created_total", "Preview sessions created, by kind.", ["kind"])
SESSIONS_ENDED = Counter("velocity_sessions_ended_total", "Preview sessions ended, by end reason.", ["reason"])
AGENT_VERDICTS = Counter(
    "velocity_agent_verdicts_total",
    "The agent watch's actions on sessions: degraded, restart, fail (and ok on recovery), as written.",
    ["action"],
)
SESSION_TRACES_DROPPED = Counter(
    "velocity_session_traces_dropped_total",
    "Agent log lines and file-sync events not kept for the session page (buffer full, write failed).",
    ["reason"],
)
SESSION_CREATE_TO_ACTIVE = Histogram(
    "velocity_session_create_to_active_seconds",
    "Time from a session's creation to its preview being ready (the seed's target: under 30 s).",
    buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300),
)
HTTP_DURATION = Histogram(
    "velocity_http_request_duration_seconds",
    "HTTP request duration by route pattern and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_ERRORS = Counter(
    "velocity_http_request_errors_total", "HTTP responses with a 5xx status, by route pattern.", ["route", "status"]
)
FLY_REQUESTS = Counter(
    "velocity_fly_api_requests_total",
    "Fly Machines API requests by operation and HTTP status ('error' when no answer came).",
    ["operation", "status"],
)
FLY_DURATION = Histogram(
    "velocity_fly_api_request_duration_seconds",
    "Fly Machines API request duration by operation.",
    ["operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MACHINE_COST = Counter(
    "velocity_machine_cost_usd_total",
    "Cost accrued by finished machines (Fly prices), added when a machine is gone.",
    ["provider"],
)

UNMATCHED_ROUTE = "<unmatched>"


def machine_created(*, warm: bool) -> None:
    MACHINES_CREATED.labels(reason="warm_pool" if warm else "session").inc()


def machine_gone(*, state: str, reason: str, source: str, provider: str, cost: Decimal) -> None:
    """A machine reached ``destroyed`` or ``failed``: count it and add what it cost."""
    if state == "failed":
        MACHINES_FAILED.labels(source=source).inc()
    else:
        MACHINES_DESTROYED.labels(reason=reason).inc()
    if cost > 0:
        MACHINE_COST.labels(provider=provider).inc(float(cost))


def session_created(*, kind: str) -> None:
    SESSIONS_CREATED.labels(kind=kind).inc()


def sessions_ended(*, reason: str, count: int = 1) -> None:
    if count:
        SESSIONS_ENDED.labels(reason=reason).inc(count)


def agent_verdict(*, action: str) -> None:
    AGENT_VERDICTS.labels(action=action).inc()


def session_traces_dropped(*, reason: str, count: int = 1) -> None:
    """Trace records lost: ``buffer_full`` (the writer fell behind) or ``write_failed`` (the database refused)."""
    if count:
        SESSION_TRACES_DROPPED.labels(reason=reason).inc(count)


def session_activated(*, created_at: datetime, now: datetime) -> None:
    SESSION_CREATE_TO_ACTIVE.observe(max(0.0, (now - created_at).total_seconds()))


def route_of(request: HttpRequest) -> str:
    """The matched URL pattern (``api/v1/sessions/<uuid:session_id>/``), never the raw path."""
    match = getattr(request, "resolver_match", None)
    return str(match.route) if match is not None and match.route else UNMATCHED_ROUTE


def http_request_observed(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    route = route_of(request)
    HTTP_DURATION.labels(route=route, method=request.method or "").observe(seconds)
    if response.status_code >= 500:
        HTTP_ERRORS.labels(route=route, status=str(response.status_code)).inc()


def fly_request_observed(operation: str, status: int | None, seconds: float) -> None:
    """The Fly client's request hook: one call per HTTP attempt (``status`` None when no answer came)."""
    FLY_REQUESTS.labels(operation=operation, status="error" if status is None else str(status)).inc()
    FLY_DURATION.labels(operation=operation).observe(seconds)
