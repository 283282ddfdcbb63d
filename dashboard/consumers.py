"""The operator streams: staff pages listen here and refresh their live regions on each event."""

from __future__ import annotations

import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from dashboard import selectors
from realtime_bridge import events, metrics


@database_sync_to_async
def _live_sessions() -> list[dict[str, Any]]:
    return selectors.live_sessions()


@database_sync_to_async
def _session(session_id: uuid.UUID) -> dict[str, Any] | None:
    return selectors.session_snapshot(session_id)


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

    async def ops_events(self, message: dict[str, Any]) -> None:
        """A bulk write's events in one layer message (``publish.dispatch_many``): one frame each, in order."""
        for event in message["events"]:
            await self.send_json({"type": "event", **event})


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
