"""Redis restarted under traffic: the channel layer recovers and broadcasts flow again.

A Redis of our own (a child ``redis-server`` on a free port, never the shared one) and two daphne
instances using it, as two orchestrators in production would. A sender on instance A broadcasts 20
times a second on a topic that a receiver on instance B joined, so every delivery crosses Redis.
Redis is SIGKILLed for a few seconds and started again on the same port; broadcasts must reach B again
within 15 s, and both instances' ``/health`` must return to 200. (The Supabase bridge runs only in client
mode, against a Supabase project; it is not part of this scenario.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.stack import Stack, free_port, signal_group
from resilience.attacks_frames import round_trip
from resilience.context import Context, connect, join, token
from resilience.report import NotRun, Outcome

RATE = 20
RECOVERY_SECONDS = 15


class Redis:
    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise NotRun("redis-server is not installed")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(  # noqa: S603  (a fixed argv)
            argv, cwd=self.folder, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return
            time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None:
            signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            self.process = None


def instance(ctx: Context, folder: Path, redis: Redis) -> Stack:
    shared = {k: ctx.stack.env[k] for k in ("VELOCITY_VAR_DIR", "SUPABASE_JWT_SECRET", "DJANGO_SECRET_KEY")}
    stack = Stack(folder, **shared, REDIS_URL=redis.url)
    if "DATABASE_URL" in ctx.stack.env:
        stack.env["DATABASE_URL"] = ctx.stack.env["DATABASE_URL"]
    stack.logs.mkdir(parents=True, exist_ok=True)
    stack.start_server()
    return stack


class Traffic:
    """A sender on A and a receiver on B; both reconnect when the server drops them."""

    def __init__(self, a: Stack, b: Stack, topic: str) -> None:
        self.a, self.b, self.topic = a, b, topic
        self.received: list[float] = []
        self.reconnects = 0
        self.stop = asyncio.Event()

    def url(self, stack: Stack) -> str:
        return f"ws://127.0.0.1:{stack.port}/realtime/v1/websocket?apikey={token(role='service_role')}&vsn=1.0.0"

    async def _socket(self, stack: Stack) -> Any:
        while not self.stop.is_set():
            try:
                opened = await connect(self.url(stack))
                await join(opened, self.topic)
                return opened
            except (OSError, TimeoutError, websockets.WebSocketException):
                await asyncio.sleep(0.5)
        return None

    async def receive(self) -> None:
        while not self.stop.is_set():
            receiver = await self._socket(self.b)
            if receiver is None:
                return
            with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
                while not self.stop.is_set():
                    frame = json.loads(await asyncio.wait_for(receiver.recv(), 1))
                    if frame.get("event") == "broadcast":
                        self.received.append(time.monotonic())
            self.reconnects += 1

    async def send(self) -> None:
        sender = await self._socket(self.a)
        while not self.stop.is_set() and sender is not None:
            body = {"type": "broadcast", "event": "tick", "payload": {"t": time.time()}}
            frame = {
                "topic": f"realtime:{self.topic}",
                "event": "broadcast",
                "payload": body,
                "ref": None,
                "join_ref": "1",
            }
            try:
                await sender.send(json.dumps(frame))
            except websockets.ConnectionClosed:
                self.reconnects += 1
                sender = await self._socket(self.a)
            await asyncio.sleep(1 / RATE)


def health(stack: Stack) -> int:
    try:
        return httpx.get(f"{stack.base_url}/health", timeout=5).status_code
    except httpx.HTTPError:
        return 0


async def until(condition: Any, timeout: float) -> float | None:
    """Seconds until ``condition()`` held, or None."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if await asyncio.to_thread(condition):
            return time.monotonic() - began
        await asyncio.sleep(0.2)
    return None


async def outage(redis: Redis, a: Stack, b: Stack, out: Outcome) -> None:
    traffic = Traffic(a, b, f"project:redis-{uuid.uuid4().hex[:6]}")
    tasks = [asyncio.create_task(traffic.receive()), asyncio.create_task(traffic.send())]
    await asyncio.sleep(3)
    out.saw(f"before the outage: {len(traffic.received)} deliveries A → B in 3 s")
    redis.kill()
    out.step("SIGKILL redis; keep sending for 3 s")
    await asyncio.sleep(3)
    out.saw(f"during the outage: /health A {health(a)}, B {health(b)}")
    redis.start()
    restarted = time.monotonic()
    out.step("redis started again on the same port")
    flowing = await until(lambda: any(t > restarted for t in traffic.received), RECOVERY_SECONDS)
    out.check(
        flowing is not None,
        f"broadcasts reach B again {flowing or 0:.1f} s after the restart",
        f"no broadcast reached B within {RECOVERY_SECONDS} s of the restart",
    )
    fresh = await round_trip(Context(b))
    out.saw(f"a fresh pair of sockets on B {'does' if fresh else 'does not'} round-trip a broadcast after the restart")
    healthy = await until(lambda: health(a) == 200 and health(b) == 200, RECOVERY_SECONDS)
    if not out.check(healthy is not None, "both instances report healthy again", "an instance stays unhealthy"):
        later = await until(lambda: health(a) == 200 and health(b) == 200, 45)
        out.saw(
            f"healthy {RECOVERY_SECONDS + later:.0f} s after the restart"
            if later
            else f"still unhealthy {RECOVERY_SECONDS + 45} s after the restart"
        )
        for stack in (a, b):
            with contextlib.suppress(httpx.HTTPError, ValueError):
                out.saw(f"{stack.port} /health: {httpx.get(f'{stack.base_url}/health', timeout=5).json()}")
            out.saw(f"{stack.port} log tail: {(stack.logs / 'daphne.log').read_text()[-600:]!r}")
    traffic.stop.set()
    await asyncio.gather(*tasks)
    out.saw(f"sockets reconnected by the clients: {traffic.reconnects}")


def run(ctx: Context, out: Outcome) -> None:
    folder = ctx.stack.root / "redis-scenario"
    folder.mkdir(exist_ok=True)
    redis = Redis(folder)
    redis.start()
    instances: list[Stack] = []
    try:
        instances = [instance(ctx, folder / name, redis) for name in ("a", "b")]
        out.step(f"redis on port {redis.port}; daphne A on {instances[0].port} and B on {instances[1].port} using it")
        asyncio.run(outage(redis, instances[0], instances[1], out))
    finally:
        for stack in instances:
            stack.stop_server()
        redis.kill()
