"""REST broadcast endpoints (batch and single) with a subscriber socket in the same process."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient

from realtime_bridge.routing import realtime_application as application
from realtime_bridge.testing import service_token
from velocity.auth import issue_token

pytestmark = pytest.mark.django_db

BATCH = "/realtime/v1/api/broadcast"
EDITOR_ORIGIN = "http://localhost:5173"  # one of the embedded default's CORS_ALLOWED_ORIGINS


@pytest.fixture
async def subscriber() -> AsyncIterator[WebsocketCommunicator]:
    communicator = WebsocketCommunicator(application, f"/realtime/v1/websocket?apikey={service_token()}&vsn=2.0.0")
    await communicator.connect()
    await communicator.send_to(text_data='["1","1","realtime:project:p1","phx_join",{"config":{"private":true}}]')
    assert json.loads(await communicator.receive_from())[4]["status"] == "ok"
    yield communicator
    await communicator.disconnect()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_a_batch_broadcast_is_accepted_and_delivered(subscriber):
    message = {"topic": "project:p1", "event": "session:status", "payload": {"status": "active"}, "private": True}
    response = await AsyncClient().post(
        BATCH + "?apikey=ignored&vsn=2.0.0",
        {"messages": [message]},
        content_type="application/json",
        headers={**bearer(service_token()), "origin": EDITOR_ORIGIN},
    )
    assert response.status_code == 202
    assert response["Access-Control-Allow-Origin"] == EDITOR_ORIGIN
    frame = json.loads(await subscriber.receive_from())
    assert frame == [
        None,
        None,
        "realtime:project:p1",
        "broadcast",
        {"type": "broadcast", "event": "session:status", "payload": {"status": "active"}},
    ]


async def test_a_batch_skips_topics_the_token_may_not_write(subscriber):
    stranger = issue_token(sub=uuid.uuid4())
    body = {"messages": [{"topic": "project:p1", "event": "e", "payload": {}, "private": True}]}
    response = await AsyncClient().post(BATCH, body, content_type="application/json", headers={"apikey": stranger})
    assert response.status_code == 202
    assert await subscriber.receive_nothing(0.2)


async def test_a_public_message_to_a_project_topic_reaches_nobody(subscriber):
    body = {"messages": [{"topic": "project:p1", "event": "e", "payload": {}, "private": False}]}
    response = await AsyncClient().post(BATCH, body, content_type="application/json", headers=bearer(service_token()))
    assert response.status_code == 202
    assert await subscriber.receive_nothing(0.2)


async def test_the_batch_endpoint_refuses_bad_tokens_and_invalid_messages():
    client = AsyncClient()
    body = {"messages": [{"topic": "project:p1", "event": "", "payload": "text"}]}
    assert (await client.post(BATCH, body, content_type="application/json", headers=bearer("x.y.z"))).status_code == 401
    response = await client.post(BATCH, body, content_type="application/json", headers=bearer(service_token()))
    assert response.status_code == 422
    assert response.json() == {"errors": {"messages": [{"event": ["can't be blank"], "payload": ["must be a map"]}]}}


async def test_the_preflight_allows_the_headers_realtime_js_sends():
    preflight = {"origin": EDITOR_ORIGIN, "access-control-request-method": "POST"}
    response = await AsyncClient().options(BATCH, headers=preflight)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == EDITOR_ORIGIN
    for header in ("apikey", "authorization", "content-type", "x-client-info"):
        assert header in response["Access-Control-Allow-Headers"]


async def test_the_single_form_delivers_raw_bytes_as_kind_4(subscriber):
    url = "/realtime/v1/api/broadcast/project%3Ap1/events/blob?private=true"
    response = await AsyncClient().post(
        url, b"\xca\xfe", content_type="application/octet-stream", headers=bearer(service_token())
    )
    assert response.status_code == 202
    frame = await subscriber.receive_output(timeout=2)
    assert frame["bytes"] == bytes([4, 19, 4, 0, 0]) + b"realtime:project:p1blob\xca\xfe"


async def test_the_single_form_delivers_json_to_vsn_2_as_kind_4_with_a_json_payload(subscriber):
    url = "/realtime/v1/api/broadcast/project%3Ap1/events/note?private=true"
    response = await AsyncClient().post(
        url, {"text": "hi"}, content_type="application/json", headers=bearer(service_token())
    )
    assert response.status_code == 202
    frame = await subscriber.receive_output(timeout=2)
    assert frame["bytes"] == bytes([4, 19, 4, 0, 1]) + b'realtime:project:p1note{"text":"hi"}'


async def test_a_public_message_on_an_unclaimed_topic_needs_no_policy():
    listener = WebsocketCommunicator(application, f"/realtime/v1/websocket?apikey={service_token()}&vsn=1.0.0")
    await listener.connect()
    join = {"topic": "realtime:lobby", "event": "phx_join", "payload": {"config": {}}, "ref": "1", "join_ref": "1"}
    await listener.send_to(text_data=json.dumps(join))
    assert json.loads(await listener.receive_from())["payload"]["status"] == "ok"
    anon = issue_token(sub=None, role="anon")
    body = {"messages": [{"topic": "lobby", "event": "e", "payload": {"n": 1}}]}
    response = await AsyncClient().post(BATCH, body, content_type="application/json", headers=bearer(anon))
    assert response.status_code == 202
    assert json.loads(await listener.receive_from())["payload"] == {
        "type": "broadcast",
        "event": "e",
        "payload": {"n": 1},
    }
    await listener.disconnect()


async def test_the_single_form_refuses_a_foreign_project_and_other_media_types():
    url = "/realtime/v1/api/broadcast/project%3Ap1/events/e?private=true"
    client = AsyncClient()
    stranger = bearer(issue_token(sub=uuid.uuid4()))
    foreign = await client.post(url, {}, content_type="application/json", headers=stranger)
    assert foreign.status_code == 403
    public = await client.post(
        url.removesuffix("?private=true"), {}, content_type="application/json", headers=bearer(service_token())
    )
    assert public.status_code == 403
    text = await client.post(url, "hi", content_type="text/plain", headers=bearer(service_token()))
    assert text.status_code == 415


async def test_the_endpoint_is_off_when_a_supabase_project_is_configured(settings):
    settings.SUPABASE_URL = "https://example.supabase.co"
    body = {"messages": [{"topic": "project:p1", "event": "e", "payload": {}}]}
    response = await AsyncClient().post(BATCH, body, content_type="application/json", headers=bearer(service_token()))
    assert response.status_code == 404
    communicator = WebsocketCommunicator(application, f"/realtime/v1/websocket?apikey={service_token()}")
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()
    settings.REALTIME_EMBEDDED_ALWAYS = True
    response = await AsyncClient().post(BATCH, body, content_type="application/json", headers=bearer(service_token()))
    assert response.status_code == 202
