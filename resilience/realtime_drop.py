"""Realtime dropped in the middle of a stream of edits: afterwards the agent's files equal the editor's.

A live session with a real agent; the editor (official Python client) streams edits over 20 files. Part
way through, daphne is SIGKILLed and started again on the same port: the editor's socket and the
agent's die, edits sent meanwhile are lost. The editor keeps editing locally, then reconnects and sends
its whole state as one ``files:snapshot`` (repeated until ``files:synced`` answers, since the agent
rejoins on its own backoff). Every file on the agent's disk must then hash like the editor's copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.edit_to_ack import CHANNEL_CONFIG, FILLER, mismatched_files, project_dir_of
from bench.time_to_preview import create_and_join, end_session, user_headers
from resilience.context import Context
from resilience.report import Outcome

PATHS = 20
EDITS = 300
KILL_AT = 120
RATE = 50


class Editor:
    """The editor's side: local file state, and a channel that may die under it."""

    def __init__(self, url: str, token: str, project: str) -> None:
        self.url, self.token, self.topic = url, token, f"project:{project}"
        self.files: dict[str, tuple[int, str]] = {}
        self.acked = 0
        self.snapshot_acked = asyncio.Event()
        self.client: Any = None
        self.channel: Any = None

    def on_broadcast(self, message: Any) -> None:
        event = message.get("event")
        payload = message.get("payload") or {}
        if event == "file:synced":
            self.acked += 1
        elif event == "files:synced" and payload.get("mode") == "acks":  # acks merged by the agent's pacing
            self.acked += len(payload.get("files") or [])
        elif event == "files:synced" and payload.get("count") == len(self.files):
            self.snapshot_acked.set()

    async def connect(self, timeout: float = 30) -> None:
        from realtime import AsyncRealtimeClient

        deadline = time.monotonic() + timeout
        while True:
            try:
                self.client = AsyncRealtimeClient(self.url, token=self.token, auto_reconnect=False, max_retries=1)
                await self.client.connect()
                self.channel = self.client.channel(self.topic, CHANNEL_CONFIG)
                self.channel.on_broadcast("*", self.on_broadcast)
                await self._subscribe()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _subscribe(self) -> None:
        joined = asyncio.Event()
        await self.channel.subscribe(lambda state, error: joined.set() if str(state.value) == "SUBSCRIBED" else None)
        await asyncio.wait_for(joined.wait(), 5)

    async def edit(self, index: int) -> bool:
        """Change one file locally and try to send it; False when the send failed."""
        path = f"src/file{index % PATHS}.ts"
        version = self.files.get(path, (0, ""))[0] + 1
        content = f"// edit {index}\n{FILLER}"
        self.files[path] = (version, content)
        payload = {
            "path": path,
            "content": content,
            "encoding": "utf-8",
            "version": version,
            "sent_at": time.time() * 1000,
        }
        try:
            await asyncio.wait_for(self.channel.send_broadcast("file:update", payload), 1)
            return bool(self.client.is_connected)
        except Exception:
            return False

    async def resync(self, timeout: float = 45) -> bool:
        """Send the whole state as a snapshot until the agent acknowledges all of it."""
        files = [{"path": p, "content": c, "encoding": "utf-8", "version": v} for p, (v, c) in self.files.items()]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.snapshot_acked.clear()
            with contextlib.suppress(Exception):
                await self.channel.send_broadcast("files:snapshot", {"files": files, "sent_at": time.time() * 1000})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.snapshot_acked.wait(), 2)
                return True
        return False

    def digests(self) -> dict[str, str]:
        return {path: hashlib.sha256(content.encode()).hexdigest() for path, (_, content) in self.files.items()}


async def stream_with_a_drop(ctx: Context, editor: Editor, out: Outcome) -> int:
    await editor.connect()
    failed = 0
    for index in range(EDITS):
        if index == KILL_AT:
            out.step(f"after {KILL_AT} edits: SIGKILL daphne, start it again on the same port")
            await asyncio.to_thread(restart_server, ctx)
        failed += not await editor.edit(index)
        await asyncio.sleep(1 / RATE)
    return failed


def restart_server(ctx: Context) -> None:
    from bench.stack import signal_group

    assert ctx.stack.server is not None  # noqa: S101
    signal_group(ctx.stack.server.pid, 9)
    ctx.stack.server.wait(10)
    ctx.stack.server = None
    ctx.stack.start_server()


async def drop_and_resync(ctx: Context, project: str, token: str, out: Outcome, disk: Path) -> Editor:
    editor = Editor(f"{ctx.stack.base_url}/realtime/v1", token, project)
    failed = await stream_with_a_drop(ctx, editor, out)
    out.saw(f"{EDITS} edits: {failed} sends failed, {editor.acked} file:synced received")
    await asyncio.sleep(1)
    out.saw(f"before the resync {mismatched_files(disk, editor.digests())} of {PATHS} files differ on the agent's disk")
    with contextlib.suppress(Exception):
        await editor.client.close()
    out.step("the editor reconnects and sends its state as one files:snapshot until acknowledged")
    await editor.connect()
    out.check(await editor.resync(), "the agent acknowledged the snapshot", "the agent never acknowledged the snapshot")
    with contextlib.suppress(Exception):
        await editor.client.close()
    return editor


def run(ctx: Context, out: Outcome) -> None:
    ctx.stack.start_cluster()
    user, project = uuid.uuid4(), f"drop-{uuid.uuid4().hex[:6]}"
    headers = user_headers(user)
    try:
        with httpx.Client(timeout=30) as client:
            session = create_and_join(client, ctx.stack.base_url, headers, project).session
            out.step(f"session {session['id']} active; streaming {EDITS} edits at {RATE}/s over {PATHS} files")
            disk = project_dir_of(ctx.stack, session)
            editor = asyncio.run(drop_and_resync(ctx, project, headers["Authorization"][7:], out, disk))
            mismatched = mismatched_files(disk, editor.digests())
            out.check(
                mismatched == 0,
                f"all {PATHS} files on the agent's disk hash like the editor's",
                f"{mismatched} of {PATHS} files differ from the editor's",
            )
            end_session(client, ctx.stack.base_url, headers, session["id"])
    finally:
        ctx.stack.stop_cluster()
