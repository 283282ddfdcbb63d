"""Test helpers around the official clients: realtime-js through `js/client.mjs`, and a frame log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import Callable
from typing import Any

from realtime import AsyncRealtimeChannel, RealtimeSubscribeStates

from realtime_bridge.testing import REPO_ROOT, ensure_js_harness
from velocity.testing import async_wait_until

Event = dict[str, Any]


class JsClient:
    """A realtime-js 2.119.1 client in a Node process; its callbacks arrive as JSON events.

    ``library="supabase-js"`` builds it as a frontend does, ``createClient(url, apikey).realtime`` of
    supabase-js 2.119.1 (with ``access_token`` as its ``accessToken`` option when given).
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._ids = 0
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(
        cls,
        http_base: str,
        apikey: str,
        vsn: str = "2.0.0",
        *,
        library: str = "realtime-js",
        access_token: str = "",
    ) -> JsClient:
        script = ensure_js_harness()
        node = shutil.which("node") or "node"
        process = await asyncio.create_subprocess_exec(
            node,
            str(script),
            http_base,
            apikey,
            vsn,
            library,
            access_token,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        client = cls(process)
        await client.expect(lambda e: e["type"] == "ready")
        return client

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                async with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()

    async def command(self, cmd: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        await self.process.stdin.drain()

    async def call(self, cmd: str, timeout: float = 10, **fields: Any) -> Any:
        """Run a command and return its result value (or raise its error)."""
        self._ids += 1
        ref = str(self._ids)
        await self.command(cmd, id=ref, **fields)
        event = await self.expect(lambda e: e.get("id") == ref and e["type"] in ("result", "error"), timeout)
        if event["type"] == "error":
            raise AssertionError(event["message"])
        return event["value"]

    async def expect(self, predicate: Callable[[Event], bool], timeout: float = 10) -> Event:
        """The first not yet consumed event matching `predicate`, waiting for it if needed."""
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for index, event in enumerate(self.events):
                    if predicate(event):
                        self.events.pop(index)
                        return event
                await self._changed.wait()

    async def join(self, topic: str, timeout: float = 10, **fields: Any) -> Event:
        """Join like the agent and the editor do: private unless the config says otherwise."""
        fields["config"] = {"private": True, **fields.get("config", {})}
        await self.command("join", topic=topic, **fields)
        return await self.expect(lambda e: e["type"] == "status" and e["topic"] == topic, timeout)

    async def close(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                await self.command("exit")
            try:
                await asyncio.wait_for(self.process.wait(), 3)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()


class Inbox:
    """Collects Python client callbacks and waits for them."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        self.items.append(item)

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = 10) -> Any:
        item = await async_wait_until(lambda: next((i for i in self.items if predicate(i)), None), timeout=timeout)
        self.items.remove(item)
        return item


def private(options: dict[str, Any] | None = None) -> Any:
    """Python channel options with ``private: true``, as the agent and the editor join."""
    options = options or {}
    return {**options, "config": {**options.get("config", {}), "private": True}}


async def subscribe(channel: AsyncRealtimeChannel) -> tuple[RealtimeSubscribeStates, Exception | None]:
    """Subscribe a Python channel and return its first state (SUBSCRIBED, or CHANNEL_ERROR with the reason)."""
    states: list[tuple[RealtimeSubscribeStates, Exception | None]] = []
    await channel.subscribe(lambda state, error: states.append((state, error)))
    return states[0]
