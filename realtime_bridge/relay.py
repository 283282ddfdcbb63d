"""Publishing from processes that are not the ASGI server, and server-side broadcasts on topics.

With Redis, every process shares the channel layer and publishes directly. In the embedded default
the layer is in-memory, so it exists only inside the server process: the task cluster (provisioning,
sweeps) then hands its events to the server over HTTP (``POST /realtime/v1/internal/relay``, service-role
token), and the server publishes them. Broadcasts on ``project:{id}`` from the orchestrator itself
(``session:status``) go to whichever realtime service is live: the embedded endpoint, or the Supabase
project's REST broadcast API.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import httpx
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from velocity import json_input
from velocity.auth import TokenError, issue_token, verify_token

logger = logging.getLogger(__name__)
RELAY_PATH = "/realtime/v1/internal/relay"
_server_process = False
_local = threading.local()


def mark_server_process() -> None:
    """Called by the ASGI entry point: this process owns the sockets and the in-memory layer."""
    global _server_process
    _server_process = True


def needed() -> bool:
    return not _server_process and isinstance(get_channel_layer(), InMemoryChannelLayer)


def _service_token() -> str:
    return issue_token(sub=None, role="service_role", ttl=60)


@contextlib.contextmanager
def batched() -> Iterator[None]:
    """Within this block, relayed publications are collected and sent as one request at the end."""
    if getattr(_local, "batch", None) is not None:
        yield
        return
    _local.batch = []
    try:
        yield
    finally:
        items, _local.batch = _local.batch, None
        if items:
            _send({"kind": "batch", "items": items})


def post(kind: str, body: dict[str, Any]) -> None:
    """Hand one publication to the server process; a failure is logged, never raised."""
    batch = getattr(_local, "batch", None)
    if batch is not None:
        batch.append({"kind": kind, **body})
        return
    _send({"kind": kind, **body})


def _send(body: dict[str, Any]) -> None:
    kind = body["kind"]
    try:
        httpx.post(
            settings.ORCHESTRATOR_URL + RELAY_PATH,
            json=body,
            headers={"Authorization": f"Bearer {_service_token()}"},
            timeout=10,
        ).raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("relay to the server failed", extra={"kind": kind, "error": type(exc).__name__})


def broadcast_on_commit(*, topic: str, event: str, payload: dict[str, Any]) -> None:
    """Broadcast ``event`` on ``topic`` (e.g. ``project:abc``) after the transaction commits."""
    transaction.on_commit(partial(broadcast, topic=topic, event=event, payload=payload))


def broadcast(*, topic: str, event: str, payload: dict[str, Any]) -> None:
    # Project channels are private (the editor and the agent join them so); the service role may send.
    message = {"topic": topic, "event": event, "payload": payload, "private": True}
    if settings.SUPABASE_URL:
        _supabase_broadcast(message)
    elif needed():
        post("broadcast", {"message": message})
    else:
        from asgiref.sync import async_to_sync

        async_to_sync(_local_broadcast)(message)


def _supabase_broadcast(message: dict[str, Any]) -> None:
    key = settings.SUPABASE_SERVICE_ROLE_KEY
    try:
        httpx.post(
            f"{settings.SUPABASE_URL}/realtime/v1/api/broadcast",
            json={"messages": [message]},
            headers={"apikey": key, "Authorization": f"Bearer {key}"},
            timeout=5,
        ).raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("supabase broadcast failed", extra={"event": message["event"], "error": type(exc).__name__})


async def _local_broadcast(message: dict[str, Any]) -> None:
    from realtime_bridge.views import publish_message

    await publish_message(message)


async def _dispatch(body: dict[str, Any]) -> None:
    from realtime_bridge import events

    if body["kind"] == "batch":
        for item in body["items"]:
            await _dispatch(item)
    elif body["kind"] == "event":
        await events.apublish(events.Event(**body["event"]))
    elif body["kind"] == "row_change":
        await events.apublish_row_change(body["change"])
    elif body["kind"] == "broadcast":
        await _local_broadcast(body["message"])
    elif body["kind"] == "reauthorize":
        await events.areauthorize(str(body["topic"]))


@csrf_exempt
async def relay_view(request: HttpRequest) -> HttpResponse:
    """The server side of the relay: service role only."""
    header = request.headers.get("Authorization", "")
    try:
        claims = verify_token(header.removeprefix("Bearer ").strip())
    except TokenError:
        return JsonResponse({"error": "unauthorized"}, status=401)
    if not claims.is_service_role or request.method != "POST":
        return JsonResponse({"error": "forbidden"}, status=403)
    try:
        body = json_input.loads(request.body)
        await _dispatch(body)
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "bad relay message"}, status=400)
    return JsonResponse({"ok": True}, status=202)
