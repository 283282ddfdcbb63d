"""Helpers for the realtime end-to-end tests: an editor on the official client, and a TCP relay."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from realtime import AsyncRealtimeChannel, AsyncRealtimeClient, RealtimeSubscribeStates

from velocity.testing import async_wait_until

Event = tuple[str, dict[str, Any]]


class Editor:
    """The browser editor's side of ``project:{id}``, on the official Python client."""

    def __init__(self, client: AsyncRealtimeClient, channel: AsyncRealtimeChannel) -> None:
        self.client, self.channel = client, channel
        self.received: list[Event] = []
        self.files: dict[str, tuple[int, str]] = {}  # what the editor believes: path -> (version, content)

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
        version = version if version is not None else self.files.get(path, (0, ""))[0] + 1
        self.files[path] = (version, content)
        body = {"path": path, "content": content, "encoding": "utf-8", "version": version, **extra}
        await self.channel.send_broadcast("file:update", body)

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        return await async_wait_until(lambda: next((i for i in self.received if predicate(i)), None), timeout=timeout)

    async def synced(self, path: str, version: int) -> dict[str, Any]:
        def matches(event: Event) -> bool:
            name, body = event
            return name == "file:synced" and (body.get("path"), body.get("version")) == (path, version)

        return (await self.wait_for(matches))[1]

    async def resend_missing(self, manifest: dict[str, Any]) -> list[str]:
        """What an editor does with ``agent:manifest``: resend every file the agent has older or not at all."""
        stale = [
            path
            for path, (version, _) in self.files.items()
            if (manifest["files"].get(path) or {}).get("version", -1) < version
        ]
        for path in stale:
            version, content = self.files[path]
            await self.edit(path, content, version=version)
        return stale

    async def leave(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()


class Relay:
    """A TCP relay between the agent and the realtime endpoint that the test can cut.

    A fake on purpose: it is the only way to cause a network drop between two real processes.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.down = False
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
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
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
