"""Websocket adapter of the embedded Realtime endpoint (the operator streams are the dashboard's)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from realtime_bridge import metrics, policies, selectors, token_refusals
from realtime_bridge.connection import Connection, Limits
from realtime_bridge.hub import get_hub
from realtime_bridge.protocol import serializer_for
from realtime_bridge.wire import writer_for
from velocity.auth import Claims, TokenError

logger = logging.getLogger(__name__)

DENIAL = "websocket.http.response"  # the ASGI denial response extension (velocity.daphne_denial for daphne)


@database_sync_to_async
def _authorize(claims: Claims, topic: str, action: str) -> bool:
    try:
        return policies.authorize(claims, topic, action)
    except DatabaseError:
        logger.exception("realtime authorization query failed", extra={"topic": topic})
        return False


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
        if serializer is None:  # Phoenix refuses an unknown vsn before it reads the key: 403, no body
            await self.close()
            return
        try:
            claims = token_refusals.realtime_claims(apikey, time.time())
        except TokenError as exc:
            await self.refuse_token(exc, apikey)
            return
        hub = get_hub()
        self.conn = Connection(self, serializer, claims, apikey, hub, _authorize, Limits.from_settings())
        await self.accept()
        self.conn.writer = writer_for(self.base_send)
        await hub.register(self.conn)

    async def refuse_token(self, exc: TokenError, apikey: str) -> None:
        """Realtime's handshake refusal: 401 with the reason, after ``REALTIME_CONNECT_ERROR_DELAY``."""
        metrics.join_refused()
        logger.info("realtime handshake refused", extra={"code": exc.code})
        await asyncio.sleep(settings.REALTIME_CONNECT_ERROR_DELAY)
        await self.deny(*token_refusals.handshake_body(exc, apikey, time.time()))

    async def deny(self, status: int, body: dict[str, str]) -> None:
        """Refuse the handshake with an HTTP answer, as Realtime does (a plain refusal where the server
        offers no denial response, e.g. in-process tests)."""
        if DENIAL not in self.scope.get("extensions", {}):
            await self.close()
            return
        headers = [(b"content-type", b"application/json")]
        await self.base_send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await self.base_send(
            {"type": "websocket.http.response.body", "body": json.dumps(body, separators=(",", ":")).encode()}
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' loop without its per-message task and ``asyncio.wait``: this consumer has one source
        of messages (the socket; no channel layer), so it awaits ``receive`` directly."""
        self.scope, self.channel_layer, self.base_send = scope, None, send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message ``close_old_connections`` hop to a worker thread.

        That hop was ~14 % of a 100-topic fan-out's CPU (docs/benchmarks.md). This consumer reaches the
        ORM only through ``database_sync_to_async``, which closes stale connections in its own thread.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

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
