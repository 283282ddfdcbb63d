"""Raw sockets for the few conformance cases whose detail no official client shows (a handshake's HTTP
answer, a reply to a push the clients never send, a frame's opcode)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets

from realtime_bridge.tests.conformance.conftest import Target


def socket_url(target: Target, key: str, vsn: str = "1.0.0") -> str:
    base = target.http_base.replace("http", "ws", 1)
    return f"{base}/websocket?apikey={key}&vsn={vsn}"


async def handshake_refusal(target: Target, key: str, vsn: str = "1.0.0") -> tuple[int, str, Any]:
    """(status, content type, JSON body or None when empty) of a handshake the server refuses."""
    try:
        async with websockets.connect(socket_url(target, key, vsn), open_timeout=15):
            pass
    except websockets.InvalidStatus as refused:
        response = refused.response
        return response.status_code, response.headers.get("content-type", ""), json.loads(response.body or b"null")
    raise AssertionError("the handshake was accepted")


@asynccontextmanager
async def raw_socket(target: Target, key: str, vsn: str = "1.0.0") -> AsyncIterator[RawSocket]:
    async with websockets.connect(socket_url(target, key, vsn), open_timeout=15) as socket:
        yield RawSocket(socket)


class RawSocket:
    """A vsn 1.0.0 Phoenix socket (or 2.0.0 for reading frames), frame by frame."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ref = 0

    async def push(self, topic: str, event: str, payload: Any, join_ref: str | None = None) -> str:
        self.ref += 1
        frame = {"topic": topic, "event": event, "payload": payload, "ref": str(self.ref), "join_ref": join_ref}
        await self.socket.send(json.dumps(frame))
        return str(self.ref)

    async def frame(self, timeout: float = 10) -> str | bytes:
        frame: str | bytes = await asyncio.wait_for(self.socket.recv(), timeout)
        return frame

    async def until(self, event: str, timeout: float = 10) -> dict[str, Any]:
        """The next vsn 1.0.0 message named ``event`` (earlier ones are dropped)."""
        while True:
            message = json.loads(await self.frame(timeout))
            if message["event"] == event:
                return dict(message)

    async def until_any(self, events: tuple[str, ...], timeout: float = 10) -> dict[str, Any]:
        """The next vsn 1.0.0 message named one of ``events``."""
        while True:
            message = json.loads(await self.frame(timeout))
            if message["event"] in events:
                return dict(message)

    async def join(self, topic: str, config: dict[str, Any]) -> dict[str, Any]:
        ref = await self.push(f"realtime:{topic}", "phx_join", {"config": config}, join_ref=str(self.ref + 1))
        answer = await self.until("phx_reply")
        assert answer["ref"] == ref, answer
        return dict(answer["payload"])
