"""Request bodies over API_MAX_BODY_BYTES get a 413 before any parsing; /api/ errors are always JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import httpx
import pytest
from rest_framework.test import APIClient

from realtime_bridge.testing import RealtimeServer, service_token
from velocity.asgi import application

pytestmark = pytest.mark.django_db

API = "/api/v1/sessions/"
BROADCAST = "/realtime/v1/api/broadcast"


async def call(path: str, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, Any, int]:
    """POST through the ASGI application: (status, JSON body, body messages the app read)."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    read = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        if read > len(messages):
            await asyncio.Event().wait()  # the client stays connected until the response
        return messages[read - 1]

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", b"127.0.0.1"), *headers]
    scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": headers}
    await application(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"]), read


async def test_a_declared_length_over_the_limit_is_refused_before_a_byte_is_read(settings) -> None:
    settings.API_MAX_BODY_BYTES = 1000
    headers = [(b"content-type", b"application/json"), (b"content-length", b"20000000")]
    status, body, read = await call(API, [b"[" * 1000] * 20, headers)
    assert (status, body["error"]["code"], read) == (413, "request.too_large", 0)
    assert body["error"]["details"] == {"limit_bytes": 1000}


async def test_a_chunked_body_is_refused_once_the_bytes_read_pass_the_limit(settings) -> None:
    settings.API_MAX_BODY_BYTES = 1000
    status, body, read = await call(BROADCAST, [b"x" * 400] * 50, [(b"content-type", b"application/json")])
    assert (status, body, read) == (413, {"message": "Payload too large"}, 3)


async def test_a_body_within_the_limit_reaches_the_view(settings) -> None:
    settings.API_MAX_BODY_BYTES = 1000
    status, body, _ = await call(BROADCAST, [b'{"messages"', b":[]}"], [(b"content-type", b"application/json")])
    assert (status, body) == (401, {"message": "Unauthorized"})


@pytest.fixture
def big_body_server(tmp_path: Any) -> Iterator[RealtimeServer]:
    server = RealtimeServer(
        tmp_path, API_MAX_BODY_BYTES=str(4 * 1024 * 1024), CORS_ALLOWED_ORIGINS="http://localhost:5173"
    ).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_through_daphne_a_full_size_broadcast_fits_and_a_chunked_20_mb_body_does_not(
    big_body_server: RealtimeServer,
) -> None:
    url, auth = big_body_server.http_base + "/api/broadcast", {"Authorization": f"Bearer {service_token()}"}
    payload = {"text": "x" * (3000 * 1024 - 20)}
    body = {"messages": [{"topic": "project:big", "event": "e", "payload": payload}]}
    assert httpx.post(url, json=body, headers=auth, timeout=30).status_code == 202

    def chunks() -> Iterator[bytes]:
        yield from [b"[" * 1024 * 1024] * 20

    headers = {**auth, "Content-Type": "application/json", "Origin": "http://localhost:5173"}
    response = httpx.post(url, content=chunks(), headers=headers, timeout=60)
    assert (response.status_code, response.json()) == (413, {"message": "Payload too large"})
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"  # a dev origin


def test_a_declared_length_over_the_limit_is_a_413_through_the_test_client_too(settings) -> None:
    settings.API_MAX_BODY_BYTES = 10
    response = APIClient().post(API, {"project_id": "a-long-enough-project"}, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request.too_large"


def test_an_unhandled_error_under_api_is_json_even_with_debug(settings, user_token) -> None:
    settings.DEBUG = True
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {user_token()}")
    with mock.patch("sessions.selectors.session_visible_to", side_effect=RuntimeError("boom")):
        response = client.get(API)
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal server error", "details": {}}}


def test_a_disallowed_host_under_api_is_json_even_with_debug(settings) -> None:
    settings.DEBUG = True
    response = APIClient().get(API, HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "request.invalid"
    assert b"Traceback" not in response.content
