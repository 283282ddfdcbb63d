"""Unknown websocket paths are a 404 at the handshake, through daphne as deployed (never a 500 from a
router that found no route), and a refused handshake in process."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from realtime_bridge.testing import RealtimeServer, service_token
from velocity.asgi import application

pytestmark = pytest.mark.django_db

# What an official client opens when it is given the socket's URL instead of the base it appends to.
DOUBLED = "/realtime/v1/websocket/websocket"


def handshake_status(server: RealtimeServer, path: str) -> int:
    url = f"ws://127.0.0.1:{server.port}{path}?apikey={service_token()}&vsn=1.0.0"
    try:
        with connect(url, open_timeout=10):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


@pytest.mark.slow
def test_through_daphne_an_unknown_path_is_a_404_and_the_endpoint_still_opens(realtime_server) -> None:
    for path in (DOUBLED, "/ws/nothing/", "/realtime/v2/websocket"):
        assert handshake_status(realtime_server, path) == 404, path
    assert handshake_status(realtime_server, "/realtime/v1/websocket") == 101


@pytest.mark.slow
def test_through_daphne_a_denial_carries_its_headers_and_body(realtime_server) -> None:
    url = f"ws://127.0.0.1:{realtime_server.port}/ws/nothing/?vsn=1.0.0"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10).close()
    response = refused.value.response
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.body))
    assert response.body == b'{"message":"Not found"}'


async def test_in_process_an_unknown_path_is_refused_without_an_error() -> None:
    communicator = WebsocketCommunicator(application, DOUBLED)
    connected, _ = await communicator.connect()
    assert connected is False
    await communicator.disconnect()
