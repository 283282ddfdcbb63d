"""The socket the dashboard pages listen on: ``/ws/ops/`` through the real ASGI application."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from dashboard.routing import ops_application as application
from sessions.services import session_create
from velocity.auth import user_claims
from velocity.testing import alogin_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    opened: list[WebsocketCommunicator] = []

    async def open_socket(cookie: bytes | None) -> tuple[bool, WebsocketCommunicator]:
        communicator = WebsocketCommunicator(application, "/ws/ops/", headers=[(b"cookie", cookie)] if cookie else [])
        opened.append(communicator)
        connected, _ = await communicator.connect()
        return connected, communicator

    yield open_socket
    for communicator in opened:
        await communicator.disconnect()


async def test_the_ops_socket_refuses_anonymous_visitors(connect: Callable[..., Any]) -> None:
    connected, _ = await connect(None)
    assert connected is False


async def test_the_ops_socket_refuses_users_without_staff_rights(connect: Callable[..., Any]) -> None:
    connected, _ = await connect(await alogin_cookie(is_staff=False))
    assert connected is False


async def test_staff_get_a_snapshot_then_the_session_status_events_the_pages_refresh_on(
    connect: Callable[..., Any],
) -> None:
    connected, socket = await connect(await alogin_cookie(is_staff=True))
    assert connected is True
    assert (await socket.receive_json_from(timeout=5))["type"] == "snapshot"
    create = database_sync_to_async(session_create)
    user = uuid.uuid4()
    session, _ = await create(
        claims=user_claims(user), user_id=user, project_id="socket-demo", memory_mb=512, now=timezone.now()
    )
    event = await socket.receive_json_from(timeout=5)
    assert (event["type"], event["kind"], event["data"]["session_id"]) == ("event", "session.status", str(session.id))
