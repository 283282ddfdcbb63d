"""Serving the metrics: ``GET /metrics`` on the web port, and a separate listener on ``METRICS_PORT``.

The web server, the django-q2 cluster (whose workers are forked processes) and the bridge all record
metrics, so they run in prometheus_client's multiprocess mode: ``velocity.run`` points
``PROMETHEUS_MULTIPROC_DIR`` at a directory it empties at start, every process writes its own files there,
and a scrape sums them. Database gauges are computed at scrape time by ``DatabaseCollector``.

prometheus_client picks its value class when it is first imported, so nothing here imports it at module
level: ``prepare_multiprocess_dir`` must run before any metric exists in the process.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from django.http import HttpRequest, HttpResponse

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

TRUE_VALUES = {"1", "true", "yes", "on"}


def prepare_multiprocess_dir() -> Path:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` (default ``var/prometheus``) at an empty directory; children inherit it."""
    default = Path(os.environ.get("VELOCITY_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
    path = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(default / "prometheus")))
    if path.exists():
        # Files of processes from an earlier run would be summed into this run's counters.
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def start_if_enabled() -> Any | None:
    """With ``PROMETHEUS_ENABLED``, serve the scrape registry on ``METRICS_HOST:METRICS_PORT`` from a thread."""
    if os.environ.get("PROMETHEUS_ENABLED", "").strip().lower() not in TRUE_VALUES:
        return None
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "velocity.settings")
    django.setup()
    from django.conf import settings
    from prometheus_client import start_http_server

    host = os.environ.get("METRICS_HOST") or settings.HOST
    server, _thread = start_http_server(settings.METRICS_PORT, addr=host, registry=scrape_registry(close_db=True))
    logger.info("metrics listener started", extra={"host": host, "port": settings.METRICS_PORT})
    return server


def scrape_registry(*, close_db: bool = False) -> Any:
    """Every process's metrics (summed in multiprocess mode, else this process's) plus the database gauges."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(cast("Collector", _Forward(REGISTRY)))
    registry.register(cast("Collector", DatabaseCollector(close_db=close_db)))
    return registry


class _Forward:
    """Expose another registry's metrics through this one (a registry cannot be registered in another)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterable[Any]:
        return self.source.collect()


class DatabaseCollector:
    """Gauges read from the database at scrape time, so every instance reports the same truth."""

    def __init__(self, *, close_db: bool = False) -> None:
        # The listener's request threads are not Django requests: nobody else would close their connection.
        self.close_db = close_db

    def collect(self) -> Iterator[Any]:
        from django.db import connection

        try:
            yield from self._families()
        except Exception:
            logger.exception("database metrics failed")
        finally:
            if self.close_db:
                connection.close()

    def _families(self) -> list[Any]:
        from django.db.models import Count
        from django.utils import timezone
        from prometheus_client.core import GaugeMetricFamily

        from machines.models import GONE_STATES, Machine, MachineState
        from machines.selectors import machine_cost_so_far
        from sessions.models import PreviewSession, SessionStatus

        sessions = GaugeMetricFamily("velocity_sessions", "Preview sessions by status.", labels=["status"])
        counts = dict(PreviewSession.objects.values_list("status").annotate(n=Count("id")).order_by())
        for status in SessionStatus.values:
            sessions.add_metric([status], counts.get(status, 0))
        machines = GaugeMetricFamily("velocity_machines", "Machines by state.", labels=["state"])
        counts = dict(Machine.objects.values_list("state").annotate(n=Count("id")).order_by())
        for state in MachineState.values:
            machines.add_metric([state], counts.get(state, 0))
        now = timezone.now()
        live = Machine.objects.exclude(state__in=GONE_STATES).prefetch_related("events", "sessions")
        cost = GaugeMetricFamily("velocity_machines_live_cost_usd", "Cost accrued so far by machines still live.")
        cost.add_metric([], float(sum((machine_cost_so_far(m, now) for m in live), Decimal(0))))
        return [sessions, machines, cost, *_task_families(now), *_reconcile_families(), *_resource_families(now)]


def _task_families(now: Any) -> list[Any]:
    """The task cluster and its queue, as ``/health`` sees them: alert on these, not on a 503."""
    from django.conf import settings
    from prometheus_client.core import GaugeMetricFamily

    from sessions.selectors import sessions_stuck_creating
    from velocity import task_queue

    cluster, queue = task_queue.cluster_health_now(now=now), task_queue.queue_health(now=now)
    stuck = sessions_stuck_creating(now=now, older_than=settings.STUCK_CREATING_SECONDS).count()
    values = [
        ("velocity_worker_up", "1 while a task cluster's heartbeat is fresh.", int(cluster.alive)),
        ("velocity_worker_processes", "Worker processes of the live task clusters.", cluster.workers),
        ("velocity_worker_heartbeat_age_seconds", "Seconds since the newest cluster heartbeat.", cluster.heartbeat_age),
        ("velocity_task_queue_depth", "Tasks waiting in the queue.", queue.queued),
        ("velocity_task_queue_oldest_seconds", "How long the oldest waiting task has waited.", queue.oldest_age or 0),
        ("velocity_task_failures_last_hour", "Tasks that failed in the last hour.", queue.failures_last_hour),
        ("velocity_sessions_stuck_creating", "Sessions still creating past STUCK_CREATING_SECONDS.", stuck),
    ]
    families = []
    for name, help_text, value in values:
        if value is not None:  # no heartbeat ever: no age to report
            family = GaugeMetricFamily(name, help_text)
            family.add_metric([], float(value))
            families.append(family)
    return families


RECONCILE_HELP = {
    "velocity_reconcile_orphans": "Orphan machines the newest reconciliation found.",
    "velocity_reconcile_orphan_cost_usd": "What the orphans the newest reconciliation found had cost so far.",
    "velocity_reconcile_orphan_hourly_cost_usd": "What those orphans cost per hour while they ran.",
    "velocity_reconcile_last_run_timestamp_seconds": "When the newest reconciliation that listed the provider ran.",
}


def _reconcile_families() -> list[Any]:
    """The newest complete reconciliation: orphans (ours at the provider, not live here) should cost nothing.
    Never reconciled: the families have no sample (an absent series, not a zero)."""
    from prometheus_client.core import GaugeMetricFamily

    from machines.selectors import reconcile_latest_complete

    report = reconcile_latest_complete()
    figures = {}
    if report is not None:
        figures = {
            "velocity_reconcile_orphans": float(report.orphans),
            "velocity_reconcile_orphan_cost_usd": float(report.orphan_cost),
            "velocity_reconcile_orphan_hourly_cost_usd": float(report.orphan_hourly_cost),
            "velocity_reconcile_last_run_timestamp_seconds": report.at.timestamp(),
        }
    families = []
    for name, help_text in RECONCILE_HELP.items():
        family = GaugeMetricFamily(name, help_text)
        if name in figures:
            family.add_metric([], figures[name])
        families.append(family)
    return families


def _resource_families(now: Any) -> list[Any]:
    """Each live machine's CPU and memory, as its agent's last fresh heartbeat reported them (fractions)."""
    from django.conf import settings
    from prometheus_client.core import GaugeMetricFamily

    from sessions.selectors import machine_resource_readings

    labels = ["machine", "session"]
    cpu = GaugeMetricFamily("velocity_machine_cpu_ratio", "CPU busy share of a live machine.", labels=labels)
    memory = GaugeMetricFamily("velocity_machine_memory_ratio", "Memory in use of a live machine.", labels=labels)
    for reading in machine_resource_readings(now=now, fresh_for=settings.AGENT_STALE_SECONDS):
        ids = [str(reading.machine_id), str(reading.session_id)]
        if reading.cpu is not None:
            cpu.add_metric(ids, reading.cpu)
        if reading.memory is not None:
            memory.add_metric(ids, reading.memory)
    return [cpu, memory]


def _authorized(request: HttpRequest) -> bool:
    from django.conf import settings

    token = settings.METRICS_TOKEN
    if not token:
        return True
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return secrets.compare_digest(offered.encode(), token.encode())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: Prometheus text; a bearer ``METRICS_TOKEN`` is required when one is set."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if not _authorized(request):
        return HttpResponse("metrics token required\n", status=401, content_type="text/plain")
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
