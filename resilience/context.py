"""What scenarios share: the stack under test, tokens, HTTP and raw websocket helpers."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import websockets

from bench.stack import Stack


@dataclass
class Context:
    stack: Stack

    @property
    def api(self) -> str:
        return f"{self.stack.base_url}/api/v1"

    def ws_url(self, token: str, vsn: str = "1.0.0") -> str:
        return f"ws://127.0.0.1:{self.stack.port}/realtime/v1/websocket?apikey={token}&vsn={vsn}"

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.stack.base_url}/health", timeout=10).status_code == 200
        except httpx.HTTPError:
            return False


def token(user: uuid.UUID | None = None, role: str = "authenticated", ttl: int = 3600, **extra: Any) -> str:
    from velocity.auth import issue_token

    sub = user if user is not None else (None if role == "service_role" else uuid.uuid4())
    return issue_token(sub=sub, role=role, ttl=ttl, extra=extra or None)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"<no error body: {response.text[:80]!r}>"


async def join(
    socket: Any, topic: str, *, ref: str = "1", access_token: str | None = None, **config: Any
) -> dict[str, Any]:
    """Send ``phx_join`` and return its reply."""
    payload: dict[str, Any] = {"config": {"broadcast": {"self": False, "ack": False}, **config}}
    if access_token:
        payload["access_token"] = access_token
    await socket.send(
        json.dumps({"topic": f"realtime:{topic}", "event": "phx_join", "payload": payload, "ref": ref, "join_ref": ref})
    )
    return await reply_to(socket, ref)


async def reply_to(socket: Any, ref: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("ref") == ref and frame.get("event") == "phx_reply":
                return dict(frame["payload"])


async def connect(url: str) -> Any:
    return await websockets.connect(url, max_size=None, max_queue=None, open_timeout=10)
