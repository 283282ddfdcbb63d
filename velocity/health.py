"""``GET /health``: the seed's shape plus a check per dependency, the failing ones named.

``database`` and ``channel_layer`` are what this web process needs to serve: one of them down answers 503,
so a load balancer (Fly's ``http_service`` check) takes this machine out or restarts it. ``worker`` (the
task cluster's heartbeat) and ``queue`` (the backlog, and sessions stuck in ``creating``) are about other
processes: they make the body ``degraded`` with the check named, but the answer stays 200, because
restarting healthy web machines would not bring a stopped worker back and would drop every socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone

from sessions.selectors import sessions_stuck_creating
from velocity import task_queue

logger = logging.getLogger(__name__)
STARTED_AT = time.monotonic()
CHECK_TIMEOUT = 2.0
# Without these this process cannot serve: 503. The others degrade the body only (see the docstring).
SERVING_CHECKS = ("database", "channel_layer")


def _check_database() -> dict[str, Any]:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"status": "ok", "vendor": connection.vendor, "latency_ms": _since(started)}


async def _check_channel_layer() -> dict[str, Any]:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    started = time.perf_counter()
    # The default prefix, as the realtime hub's own channel: channels_redis lets one receive() of a process
    # read Redis at a time, from its own prefix's list, and the hub's never-ending receive holds that turn, so
    # a message under another prefix would never be read (every /health a 503 after the first websocket).
    channel = await layer.new_channel()
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "health.ping", "token": token})
    message = await layer.receive(channel)
    if message.get("token") != token:
        raise RuntimeError("the channel layer returned another message")
    return {"status": "ok", "backend": type(layer).__name__, "latency_ms": _since(started)}


def _check_worker() -> dict[str, Any]:
    cluster = task_queue.cluster_health_now()
    return {
        "status": "ok" if cluster.alive else "down",
        "clusters": cluster.clusters,
        "workers": cluster.workers,
        "heartbeat_age_s": cluster.heartbeat_age,
        "last_status": cluster.status,
        "stale_after_s": cluster.stale_after,
    }


def _check_queue() -> dict[str, Any]:
    now = timezone.now()
    queue = task_queue.queue_health(now=now)
    stuck = sessions_stuck_creating(now=now, older_than=settings.STUCK_CREATING_SECONDS).count()
    lagging = queue.oldest_age is not None and queue.oldest_age > settings.QUEUE_LAG_SECONDS
    return {
        "status": "degraded" if lagging or stuck else "ok",
        "queued": queue.queued,
        "oldest_age_s": queue.oldest_age,
        "failures_last_hour": queue.failures_last_hour,
        "stuck_creating": stuck,
        "stuck_after_s": settings.STUCK_CREATING_SECONDS,
    }


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _run(name: str, check: Any) -> dict[str, Any]:
    try:
        return dict(await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT))
    except Exception as exc:
        logger.warning("health check failed", extra={"check": name, "error": type(exc).__name__})
        return {"status": "down", "error": f"{type(exc).__name__}: {exc}"[:200]}


async def health(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": await _run("database", sync_to_async(_check_database)),
        "channel_layer": await _run("channel_layer", _check_channel_layer),
        "worker": await _run("worker", sync_to_async(_check_worker)),
        "queue": await _run("queue", sync_to_async(_check_queue)),
    }
    failing = [name for name, result in checks.items() if result["status"] != "ok"]
    body: dict[str, Any] = {
        "status": "degraded" if failing else "ok",
        "timestamp": timezone.now().isoformat(),
        "uptime": round(time.monotonic() - STARTED_AT, 3),
        "version": settings.VERSION,
        "checks": checks,
    }
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if set(failing) & set(SERVING_CHECKS) else 200)
