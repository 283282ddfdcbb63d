"""What scenarios share: the stack under test, tokens, HTTP and raw websocket helpers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
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


def machine_env(ctx: Context, session_id: str) -> dict[str, str]:
    """The environment the local provider gave a session's machine (its ``config.json``, 0600 under var/):
    the machine token and realtime key the orchestrator issued, and the project folder."""
    for config in (ctx.stack.var_dir / "machines").glob("*/config.json"):
        env = json.loads(config.read_text())["env"]
        if env.get("SESSION_ID") == session_id:
            return dict(env)
    raise LookupError(f"no machine config for session {session_id}")


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


def join_frame(topic: str, ref: str, access_token: str | None = None, **config: Any) -> dict[str, Any]:
    """A ``phx_join`` as the official clients send it for a private channel (project topics are private
    only); ``private=False`` asks for the public twin."""
    payload: dict[str, Any] = {"config": {"broadcast": {"self": False, "ack": False}, "private": True, **config}}
    if access_token:
        payload["access_token"] = access_token
    return {"topic": f"realtime:{topic}", "event": "phx_join", "payload": payload, "ref": ref, "join_ref": ref}


def broadcast_frame(topic: str, event: str, payload: Any, *, join_ref: str, ref: str | None = None) -> dict[str, Any]:
    body = {"type": "broadcast", "event": event, "payload": payload}
    return {"topic": f"realtime:{topic}", "event": "broadcast", "payload": body, "ref": ref, "join_ref": join_ref}


async def join(
    socket: Any, topic: str, *, ref: str = "1", access_token: str | None = None, **config: Any
) -> dict[str, Any]:
    """Send ``phx_join`` and return its reply."""
    await socket.send(json.dumps(join_frame(topic, ref, access_token, **config)))
    return await reply_to(socket, ref)


async def reply_to(socket: Any, ref: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if frame.get("ref") == ref and frame.get("event") == "phx_reply":
                return dict(frame["payload"])


async def connect(url: str) -> Any:
    return await websockets.connect(url, max_size=None, max_queue=None, open_timeout=10)


class Peer:
    """A socket that keeps every frame it receives, so a scenario can await a reply or a push and check
    afterwards everything the socket was ever sent."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.frames: list[dict[str, Any]] = []
        self._refs = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str) -> Peer:
        return cls(await connect(url))

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.socket:
                self.frames.append(json.loads(raw))

    def next_ref(self) -> str:
        self._refs += 1
        return str(self._refs)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(frame))

    async def join(self, topic: str, *, access_token: str | None = None, **config: Any) -> tuple[str, dict[str, Any]]:
        """Join ``topic`` (private unless ``private=False``); (the join's ref, its reply payload)."""
        ref = self.next_ref()
        await self.send(join_frame(topic, ref, access_token, **config))
        frame = await self.wait_for(lambda f: f.get("ref") == ref and f.get("event") == "phx_reply")
        return ref, dict(frame["payload"]) if frame else {"status": "no reply"}

    async def wait_for(self, match: Any, *, timeout: float = 10.0, since: int = 0) -> dict[str, Any] | None:
        """The first frame from index ``since`` on that ``match`` accepts, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((f for f in self.frames[since:] if match(f)), None)
            if found is not None or time.monotonic() >= deadline:
                return found
            await asyncio.sleep(0.02)

    def text(self) -> str:
        """Everything received, as one string: what a leak check searches."""
        return json.dumps(self.frames)

    async def close(self) -> None:
        await self.socket.close()
        await self._reader


def broadcast_event(frame: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(event, payload) of a received broadcast frame; ("", {}) for any other frame."""
    if frame.get("event") != "broadcast" or not isinstance(frame.get("payload"), dict):
        return "", {}
    return str(frame["payload"].get("event", "")), dict(frame["payload"].get("payload") or {})


def anon_token(sub: uuid.UUID | None) -> str:
    """Supabase's anon key (no subject), or with ``sub`` the forgery that tries to speak for a user."""
    from velocity.auth import issue_token

    return issue_token(sub=sub, role="anon")


def synced(path: str, version: int) -> Any:
    """A ``Peer.wait_for`` matcher for the agent's ``file:synced`` of ``path`` at ``version``."""

    def match(frame: dict[str, Any]) -> bool:
        event, payload = broadcast_event(frame)
        return event == "file:synced" and payload.get("path") == path and payload.get("version") == version

    return match


def closed_with_system_error(topic: str, join_ref: str) -> Any:
    """Realtime's way to end a channel: ``phx_close`` carrying the join's ref (after a ``system`` error)."""

    def match(frame: dict[str, Any]) -> bool:
        return (
            frame.get("event") == "phx_close"
            and frame.get("topic") == f"realtime:{topic}"
            and frame.get("ref") == join_ref
        )

    return match


def had_system_error(peer: Peer, topic: str) -> bool:
    return any(
        f.get("event") == "system" and f.get("topic") == f"realtime:{topic}" and f["payload"].get("status") == "error"
        for f in peer.frames
    )


def refused(reply: dict[str, Any]) -> tuple[bool, str]:
    reason = str(reply.get("response", {}).get("reason", ""))
    return reply.get("status") == "error", reason[:90]


def rows(peer: Peer) -> list[tuple[str, dict[str, Any]]]:
    """(change type, row) of every ``postgres_changes`` record ``peer`` received."""
    found = []
    for frame in peer.frames:
        data = frame.get("payload", {}).get("data") if frame.get("event") == "postgres_changes" else None
        if isinstance(data, dict):
            found.append((str(data.get("type")), data.get("record") or data.get("old_record") or {}))
    return found
