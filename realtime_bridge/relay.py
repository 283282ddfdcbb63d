"""The relay's client: how a process that is not the ASGI server hands a publication to it.

With Redis, every process shares the channel layer and publishes directly. In the embedded default
the layer is in-memory, so it exists only inside the server process: the task cluster (provisioning,
sweeps) then posts its publications to the server over HTTP (``POST /realtime/v1/internal/relay``,
service-role token; ``views.relay_view`` receives them and ``publish.dispatch`` publishes them).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings

from velocity.auth import SERVICE_ROLE, issue_token

logger = logging.getLogger(__name__)
RELAY_PATH = "/realtime/v1/internal/relay"
_server_process = False


def mark_server_process() -> None:
    """Called by the ASGI entry point: this process owns the sockets and the in-memory layer."""
    global _server_process
    _server_process = True


def needed() -> bool:
    return not _server_process and isinstance(get_channel_layer(), InMemoryChannelLayer)


def _service_token() -> str:
    return issue_token(sub=None, role=SERVICE_ROLE, ttl=60)


def post(kind: str, body: dict[str, Any]) -> None:
    """Hand one publication (or a ``batch`` of them: ``publish.batched``) to the server process; a failure is
    logged, never raised."""
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
