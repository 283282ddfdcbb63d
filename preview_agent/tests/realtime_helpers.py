"""Helpers for the realtime end-to-end tests: an editor on the official client, the REST broadcast, and a
TCP relay."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from realtime import AsyncRealtimeChannel, AsyncRealtimeClient, RealtimeSubscribeStates

from velocity.testing import async_wait_until

Event = tuple[str, dict[str, Any]]


async def until(condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    return await async_wait_until(lambda: asyncio.to_thread(condition), timeout=timeout, interval=0.05)


def acks(received: list[Event]) -> list[dict[str, Any]]:
    """Every acknowledgement, whether alone (``file:synced``) or merged by the agent's pacing (``files:synced``)."""
    found: list[dict[str, Any]] = []
    for name, body in received:
        if name == "file:synced":
            found.append(body)
        elif name == "files:synced":
            found.extend(body.get("files", []))
    return found


async def until_count(editor: Editor, event: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """``count`` events named ``event``; for ``file:synced``, acks merged into ``files:synced`` count too."""

    def found() -> list[dict[str, Any]] | None:
        bodies = acks(editor.received) if event == "file:synced" else [b for n, b in editor.received if n == event]
        return bodies if len(bodies) >= count else None

    return await async_wait_until(found, timeout=timeout, interval=0.05, what=f"{count} {event} events")


async def rest_broadcast(base_url: str, key: str, project_id: str, event: str, payload: dict[str, Any]) -> int:
    """``POST /api/broadcast`` with the body realtime-js sends when ``send()`` falls back to REST."""
    message = {"topic": f"project:{project_id}", "event": event, "payload": payload, "private": True}
    headers = {"apikey": key, "Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{base_url}/api/broadcast", json={"messages": [message]}, headers=headers)
    return response.status_code


class Editor:
    """The browser editor's side of ``project:{id}``, on the official Python client."""

    def __init__(self, client: AsyncRealtimeClient, channel: AsyncRealtimeChannel) -> None:
        self.client, self.channel = client, channel
        self.received: list[Event] = []
        # What the editor believes: path -> (version, content), content None for a deleted file.
        self.files: dict[str, tuple[int, str | None]] = {}

    @classmethod
    async def join(cls, base_url: str, token: str, project_id: str) -> Editor:
        client = AsyncRealtimeClient(base_url, token=token)
        options: Any = {"config": {"broadcast": {"self": False, "ack": True}, "private": True}}
        channel = client.channel(f"project:{project_id}", options)
        editor = cls(client, channel)
        channel.on_broadcast("*", lambda message: editor.received.append((message["event"], message["payload"])))
        joined = asyncio.get_running_loop().create_future()

        def on_state(state: RealtimeSubscribeStates, error: Exception | None) -> None:
            if not joined.done():
                joined.set_result(state)

        await channel.subscribe(on_state)
        assert await asyncio.wait_for(joined, 10) == RealtimeSubscribeStates.SUBSCRIBED
        return editor

    async def edit(self, path: str, content: str, *, version: int | None = None, **extra: Any) -> None:
        await self.channel.send_broadcast("file:update", self.record(path, content, version, **extra))

    async def delete(self, path: str, *, version: int | None = None) -> None:
        await self.channel.send_broadcast("file:delete", self.record(path, None, version))

    def record(self, path: str, content: str | None, version: int | None = None, **extra: Any) -> dict[str, Any]:
        """Note an edit (content None: a delete) in the editor's own store; the body to send for it."""
        version = version if version is not None else self.files.get(path, (0, ""))[0] + 1
        self.files[path] = (version, content)
        if content is None:
            return {"path": path, "version": version}
        return {"path": path, "content": content, "encoding": "utf-8", "version": version, **extra}

    async def request_manifest(self, request_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """Send ``files:manifest_request`` and gather every part of its answer: ``{path: {sha256, version}}``."""
        await self.channel.send_broadcast("files:manifest_request", {"request_id": request_id})

        def complete() -> dict[str, Any] | None:
            parts = {body["part"]: body for name, body in self.received if _answers(name, body, request_id)}
            if not parts or len(parts) < next(iter(parts.values()))["parts"]:
                return None
            return {path: entry for body in parts.values() for path, entry in body["files"].items()}

        return await async_wait_until(complete, timeout=timeout, interval=0.05, what=f"manifest for {request_id}")

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        return await async_wait_until(lambda: next((i for i in self.received if predicate(i)), None), timeout=timeout)

    async def synced(self, path: str, version: int) -> dict[str, Any]:
        """The ack of ``path`` at ``version``, alone or merged into a ``files:synced``."""

        def ack() -> dict[str, Any] | None:
            return next((b for b in acks(self.received) if (b.get("path"), b.get("version")) == (path, version)), None)

        found: dict[str, Any] = await async_wait_until(ack, timeout=10.0)
        return found

    async def resend_missing(self, manifest: dict[str, Any]) -> list[str]:
        """The reconnect algorithm of docs/agent.md with ``{path: {sha256, version}}``: resend every file the
        agent has older (and different) or not at all, repeat every delete it still shows a file for."""
        behind = [
            path for path, (version, content) in self.files.items() if _behind(manifest.get(path), version, content)
        ]
        for path in behind:
            version, content = self.files[path]
            if content is None:
                await self.delete(path, version=version)
            else:
                await self.edit(path, content, version=version)
        return behind

    async def leave(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()


def _answers(name: str, body: dict[str, Any], request_id: str) -> bool:
    return name == "agent:manifest" and (body.get("request_id") == request_id or request_id in body["request_ids"])


def _behind(agent: dict[str, Any] | None, version: int, content: str | None) -> bool:
    if content is None:
        return agent is not None and agent["sha256"] is not None and agent["version"] < version
    if agent is None:
        return True
    return agent["version"] < version and agent["sha256"] != hashlib.sha256(content.encode()).hexdigest()


class Relay:
    """A TCP relay between the agent and the realtime endpoint that the test can cut; with ``delay``, each chunk is
    held that many seconds each way (``bench.create_rtt`` puts PostgreSQL across a network with it).

    A fake on purpose: it is the only way to cause a network drop between two real processes.
    """

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1", delay: float = 0.0) -> None:
        self.target_port = target_port
        self.target_host = target_host
        self.delay = delay
        self.down = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0  # connections relayed to the endpoint
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until ``restore()``."""
        self.down = True
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self.cut()
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection((self.target_host, self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink, self.delay), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket, delay: float) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            if delay:
                time.sleep(delay)
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
