"""Input that json.loads accepts but nothing downstream can use: refused, never a 500 or a closed socket."""

from __future__ import annotations

import json

import pytest
from django.test import AsyncClient

from realtime_bridge.testing import Socket, service_token

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000
LONE_SURROGATE = '{"text":"\\ud800"}'  # valid JSON whose string no UTF-8 encoder takes back
BATCH = "/realtime/v1/api/broadcast"


def broadcast_frame(topic: str, payload_json: str, ref: str = "2") -> str:
    inner = '{"type":"broadcast","event":"e","payload":' + payload_json + "}"
    return f'{{"topic":"realtime:{topic}","event":"broadcast","payload":{inner},"ref":"{ref}","join_ref":"1"}}'


async def heartbeat_answers(socket: Socket) -> bool:
    await socket.communicator.send_to(text_data='{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"hb"}')
    while (await socket.receive_event("phx_reply"))["ref"] != "hb":
        pass  # acks of earlier broadcasts
    return True


async def test_a_lone_surrogate_broadcast_is_refused_with_its_ack_and_the_sockets_stay_open(connect):
    sender, receiver = await connect(service_token()), await connect(service_token())
    await sender.join("surrogate", {"broadcast": {"ack": True}})
    await receiver.join("surrogate")
    await sender.communicator.send_to(text_data=broadcast_frame("surrogate", LONE_SURROGATE))
    reply = await sender.receive()
    assert (reply["ref"], reply["payload"]) == ("2", {"status": "error", "response": {"reason": "Malformed message"}})
    assert await receiver.communicator.receive_nothing(0.2)
    await sender.communicator.send_to(text_data=broadcast_frame("surrogate", '{"text":"\\ud83d\\ude00"}', ref="3"))
    assert (await receiver.receive())["payload"]["payload"] == {"text": "\U0001f600"}
    assert await heartbeat_answers(sender)


async def test_a_lone_surrogate_in_a_v2_binary_broadcast_is_refused_with_its_ack(connect):
    socket = await connect(service_token(), vsn="2.0.0")
    await socket.communicator.send_to(
        text_data='["1","1","realtime:bin","phx_join",{"config":{"broadcast":{"ack":true}}}]'
    )
    assert json.loads(await socket.communicator.receive_from())[4]["status"] == "ok"
    body = LONE_SURROGATE.encode()
    kind3 = bytes([3, 1, 1, 12, 1, 0, 1]) + b"12realtime:bine" + body
    await socket.communicator.send_to(bytes_data=kind3)
    reply = json.loads(await socket.communicator.receive_from())
    assert reply[4] == {"status": "error", "response": {"reason": "Malformed message"}}


async def test_a_lone_surrogate_topic_or_a_deeply_nested_frame_is_dropped_and_the_socket_stays_open(connect):
    socket = await connect(service_token())
    await socket.communicator.send_to(
        text_data='{"topic":"realtime:\\udc00","event":"phx_join","payload":{},"ref":"1"}'
    )
    await socket.communicator.send_to(text_data=DEEP)
    await socket.communicator.send_to(text_data='{"topic":"phoenix","event":"heartbeat","payload":' + DEEP[:300] + "}")
    assert await heartbeat_answers(socket)
    assert await socket.communicator.receive_nothing(0.1)


async def post(url: str, body: str, **headers: str) -> tuple[int, object]:
    headers.setdefault("authorization", f"Bearer {service_token()}")
    response = await AsyncClient().post(url, body, content_type="application/json", headers=headers)
    return response.status_code, response.json()


@pytest.mark.parametrize(
    "body",
    [DEEP, '{"messages":[{"topic":"project:p","event":"e","payload":' + LONE_SURROGATE + "}]}"],
    ids=["deep", "surrogate"],
)
async def test_the_batch_broadcast_answers_a_400_for_json_it_cannot_use(body: str):
    assert await post(BATCH, body) == (400, {"message": "Invalid JSON"})


@pytest.mark.parametrize("body", [DEEP, LONE_SURROGATE], ids=["deep", "surrogate"])
async def test_the_single_broadcast_answers_a_422_for_json_it_cannot_use(body: str):
    assert await post(BATCH + "/project:p/events/e", body) == (422, {"message": "Invalid JSON"})


async def test_the_relay_answers_a_400_for_deeply_nested_json():
    assert await post("/realtime/v1/internal/relay", DEEP) == (400, {"error": "bad relay message"})
