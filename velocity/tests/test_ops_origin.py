"""The operator streams refuse a browser page from another origin (they ride the staff session cookie)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from sessions.testing import live_session
from velocity.asgi import application
from velocity.testing import alogin_cookie

pytestmark = pytest.mark.django_db(transaction=True)


async def opens(path: str, cookie: bytes, origin: bytes | None) -> bool:
    headers = [(b"cookie", cookie)] + ([(b"origin", origin)] if origin is not None else [])
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


async def test_a_foreign_or_null_origin_is_refused_on_both_streams() -> None:
    cookie = await alogin_cookie(is_staff=True)
    session = await database_sync_to_async(live_session)(project="origin-check")
    for path in ("/ws/ops/", f"/ws/ops/sessions/{session.id}/"):
        assert await opens(path, cookie, b"http://localhost:8000")
        assert not await opens(path, cookie, b"https://attacker.example")
        assert not await opens(path, cookie, b"null")


async def test_an_allowed_origin_or_none_at_all_opens_the_stream(settings) -> None:
    settings.ALLOWED_HOSTS = ["ops.example.com"]
    cookie = await alogin_cookie(is_staff=True)
    assert await opens("/ws/ops/", cookie, b"https://ops.example.com")
    assert await opens("/ws/ops/", cookie, None)
    assert not await opens("/ws/ops/", cookie, b"http://127.0.0.1:8000")


async def test_the_realtime_endpoint_still_serves_every_origin() -> None:
    from realtime_bridge.testing import service_token

    path = f"/realtime/v1/websocket?apikey={service_token()}&vsn=1.0.0"
    communicator = WebsocketCommunicator(application, path, headers=[(b"origin", b"https://editor.example")])
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    assert connected
