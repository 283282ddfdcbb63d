"""``GET /health``: the seed's shape plus a check per dependency; 503 with the failing check named."""

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

logger = logging.getLogger(__name__)
STARTED_AT = time.monotonic()
CHECK_TIMEOUT = 2.0


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
    channel = await layer.new_channel("health.")
    token = uuid.uuid4().hex
    await layer.send(channel, {"type": "health.ping", "token": token})
    message = await layer.receive(channel)
    if message.get("token") != token:
        raise RuntimeError("the channel layer returned another message")
    return {"status": "ok", "backend": type(layer).__name__, "latency_ms": _since(started)}


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
    return JsonResponse(body, status=503 if failing else 200)
