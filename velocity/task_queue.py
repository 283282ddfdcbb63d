"""The task cluster's health, readable from any process: its heartbeat, the queue's backlog, recent failures.

**Liveness.** django-q2's sentinel (the process that supervises the workers, the pusher, the monitor and
runs the scheduler) saves its status every guard cycle (half a second) through its broker's ``set_stat``.
That status lands in the broker's cache: Redis with the Redis broker, but the process-local memory cache
with the ORM broker, where no other process can see it. The brokers below (``Q_CLUSTER["broker_class"]``)
keep django-q2's own behaviour and also write the status to the ``WorkerHeartbeat`` table at most every
``BEAT_EVERY`` seconds (and at once when the status changes, a clean stop included). So the signal is
the cluster's own report of itself, in the same place for both brokers, and it stops the moment the
sentinel stops (killed, paused, or wedged) — unlike a task or a schedule, which only shows the queue
moved and is minute-grained, or a thread in the ``qcluster`` parent, which outlives a dead sentinel.

**Backlog.** Waiting tasks and the age of the oldest are read from the broker itself (the ``OrmQ`` table
or the Redis list); the enqueue time is the ``started`` stamp django-q2 puts in every task package.
"""

from __future__ import annotations

import functools
import logging
import pickle
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf
from django_q.models import Failure, OrmQ
from django_q.signing import BadSignature, SignedPackage

from velocity.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

BEAT_EVERY = 2.0  # seconds between heartbeat writes while nothing changes
STOPPED = "Stopped"
HEARTBEATS_KEPT_FOR = timedelta(days=1)


# --- the cluster side: brokers that also beat -------------------------------------------------------


class HeartbeatMixin:
    """``set_stat`` is django-q2's status hook, called by the sentinel's guard loop: beat from there."""

    _beat_status: str = ""
    _beat_at: float = 0.0

    def set_stat(self, key: str, value: str, timeout: int) -> None:
        super().set_stat(key, value, timeout)  # type: ignore[misc]
        try:
            self._beat(value)
        except Exception:  # the guard loop must go on whatever happens to the heartbeat
            logger.exception("worker heartbeat failed")

    def _beat(self, value: str) -> None:
        stat = SignedPackage.loads(value)
        status = str(stat.status)
        if status == self._beat_status and time.monotonic() - self._beat_at < BEAT_EVERY:
            return
        # Noted before writing: while the database is down, one attempt (and one log line) per BEAT_EVERY.
        self._beat_status, self._beat_at = status, time.monotonic()
        heartbeat_save(stat, now=timezone.now())


class HeartbeatORM(HeartbeatMixin, ORM):
    """The ORM broker (no ``REDIS_URL``), beating."""


class HeartbeatRedis(HeartbeatMixin, Redis):
    """The Redis broker (``REDIS_URL``), beating, with one Redis client per process."""

    @staticmethod
    def get_connection(list_key: str | None = None) -> Any:
        """django-q2 makes a client, and so a new connection, for every broker, and ``async_task`` makes a broker per
        task: a create opened a Redis connection to queue its provisioning (5 % of its time). One client per process
        instead; redis-py gives a forked worker a pool of its own."""
        if isinstance(Conf.REDIS, str):
            return shared_redis_client(Conf.REDIS)
        return Redis.get_connection(list_key)


@functools.cache
def shared_redis_client(url: str) -> Any:
    return redis.from_url(url)


def heartbeat_save(stat: Any, *, now: datetime) -> None:
    """Store one cluster status (django-q2's ``Stat``); a cluster's first beat also drops day-old rows."""
    _, created = WorkerHeartbeat.objects.update_or_create(
        cluster_id=str(stat.cluster_id),
        defaults={
            "host": str(stat.host)[:255],
            "pid": int(stat.pid),
            "workers": len(stat.workers),
            "status": str(stat.status)[:32],
            "started_at": stat.tob or now,
            "beat_at": now,
        },
    )
    if created:
        WorkerHeartbeat.objects.filter(beat_at__lt=now - HEARTBEATS_KEPT_FOR).delete()


# --- the reading side: any process ------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterHealth:
    alive: bool
    clusters: int  # clusters beating now
    workers: int  # their worker processes
    last_beat_at: datetime | None
    heartbeat_age: float | None  # seconds since the newest beat, None when none ever came
    status: str  # the newest cluster's own word, or "none"
    stale_after: float


def cluster_health(beats: list[WorkerHeartbeat], *, now: datetime, stale_after: float) -> ClusterHealth:
    """The clusters that beat within ``stale_after`` seconds and have not stopped are alive (pure)."""
    fresh = [b for b in beats if (now - b.beat_at).total_seconds() <= stale_after and b.status != STOPPED]
    newest = max(beats, key=lambda b: b.beat_at, default=None)
    return ClusterHealth(
        alive=bool(fresh),
        clusters=len(fresh),
        workers=sum(b.workers for b in fresh),
        last_beat_at=newest.beat_at if newest else None,
        heartbeat_age=round((now - newest.beat_at).total_seconds(), 1) if newest else None,
        status=newest.status if newest else "none",
        stale_after=stale_after,
    )


def cluster_health_now(*, now: datetime | None = None) -> ClusterHealth:
    now = now or timezone.now()
    beats = list(WorkerHeartbeat.objects.filter(beat_at__gte=now - HEARTBEATS_KEPT_FOR))
    return cluster_health(beats, now=now, stale_after=settings.WORKER_STALE_SECONDS)


@dataclass(frozen=True)
class QueueHealth:
    queued: int
    oldest_enqueued_at: datetime | None
    oldest_age: float | None  # seconds the oldest waiting task has waited
    failures_last_hour: int


def queue_health(*, now: datetime | None = None) -> QueueHealth:
    now = now or timezone.now()
    broker = get_broker()
    queued = int(broker.queue_size() or 0)
    oldest = _oldest_enqueued_at(broker, now=now) if queued else None
    return QueueHealth(
        queued=queued,
        oldest_enqueued_at=oldest,
        oldest_age=round((now - oldest).total_seconds(), 1) if oldest else None,
        failures_last_hour=Failure.objects.filter(stopped__gte=now - timedelta(hours=1)).count(),
    )


def _oldest_enqueued_at(broker: Any, *, now: datetime) -> datetime | None:
    if isinstance(broker, Redis):
        package = broker.connection.lindex(broker.list_key, 0)  # rpush in, blpop out: index 0 is next
    else:
        row = OrmQ.objects.filter(key=broker.list_key, lock__lte=now).order_by("id").first()
        package = row.payload if row else None
    return _enqueued_at(package)


def _enqueued_at(package: Any) -> datetime | None:
    """The ``started`` stamp django-q2 writes into a task package when it is enqueued."""
    if not package:
        return None
    try:
        started = SignedPackage.loads(package).get("started")
    except (BadSignature, AttributeError, ValueError, pickle.UnpicklingError):
        return None
    return started if isinstance(started, datetime) else None
