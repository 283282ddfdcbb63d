"""Websocket adapters: the embedded Realtime endpoint and the operator live streams."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.db import DatabaseError

from realtime_bridge import events, metrics, policies, selectors
from realtime_bridge.connection import Connection, Limits
from realtime_bridge.hub import get_hub
from realtime_bridge.protocol import serializer_for
from velocity.auth import Claims, TokenError, realtime_audiences, verify_token

logger = logging.getLogger(__name__)


@database_sync_to_async
def _authorize(claims: Claims, topic: str, action: str) -> bool:
    try:
        return policies.authorize(claims, topic, action)
    except DatabaseError:
        logger.exception("realtime authorization query failed", extra={"topic": topic})
        return False


@database_sync_to_async
def _live_sessions() -> list[dict[str, Any]]:
    return selectors.live_sessions()


@database_sync_to_async
def _session(session_id: uuid.UUID) -> dict[str, Any] | None:
    return selectors.session_snapshot(session_id)


def _handshake(scope: dict[str, Any]) -> tuple[str | None, str]:
    """(vsn, apikey) from the query string; the `x-api-key` header wins like in Realtime."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    headers = dict(scope.get("headers", []))
    apikey = headers.get(b"x-api-key", b"").decode("latin-1") or query.get("apikey", [""])[0]
    return query.get("vsn", [None])[0], apikey.strip()


class RealtimeConsumer(AsyncWebsocketConsumer):
    """`/realtime/v1/websocket`: Phoenix Channels as Supabase Realtime speaks them."""

    # No per-socket layer channel: the hub fans out to local sockets directly.
    channel_layer_alias = "realtime-direct"
    conn: Connection | None = None

    async def connect(self) -> None:
        if not selectors.embedded_endpoint_enabled():
            await self.close()
            return
        vsn, apikey = _handshake(self.scope)
        serializer = serializer_for(vsn)
        try:
            claims = verify_token(apikey, audiences=realtime_audiences())
        except TokenError as exc:
            metrics.join_refused()
            logger.info("realtime handshake refused", extra={"code": exc.code})
            await self.close()
            return
        if serializer is None:
            await self.close()
            return
        hub = get_hub()
        self.conn = Connection(self, serializer, claims, apikey, hub, _authorize, Limits.from_settings())
        await self.accept()
        await hub.register(self.conn)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.conn is not None:
            await self.conn.receive(text_data, bytes_data)

    async def disconnect(self, code: int) -> None:
        if self.conn is not None:
            await self.conn.close()

    async def send_frame(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.send(bytes_data=frame)
        else:
            await self.send(text_data=frame)

    async def close_socket(self) -> None:
        await self.close()


class OpsConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/ops/`: staff only; a snapshot, then every event published through `events.py`."""

    groups_joined: list[str] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_staff:
            await self.close()
            return
        self.groups_joined = await self.ops_groups()
        if self.groups_joined is None:
            await self.close()
            return
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json(await self.snapshot())

    async def ops_groups(self) -> list[str] | None:
        """The groups this stream follows, or None to refuse it."""
        return [events.OPS_GROUP]

    async def snapshot(self) -> dict[str, Any]:
        return {"type": "snapshot", "sessions": await _live_sessions(), "metrics": metrics.snapshot()}

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined or []:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def ops_event(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "event", **message["event"]})


class OpsSessionConsumer(OpsConsumer):
    """`/ws/ops/sessions/<uuid>/`: one session's events and its project's mirrored messages."""

    session: dict[str, Any] | None = None

    async def ops_groups(self) -> list[str] | None:
        session_id = self.scope["url_route"]["kwargs"]["session_id"]
        self.session = await _session(uuid.UUID(str(session_id)))
        if self.session is None:
            return None
        return [
            events.session_group(self.session["id"]),
            events.project_group(self.session["project_id"]),
        ]

    async def snapshot(self) -> dict[str, Any]:
        return {"type": "snapshot", "session": self.session, "metrics": metrics.snapshot()}
