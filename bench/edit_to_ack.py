"""Edit to ack: the editor's ``file:update`` (official Python client) → the agent writes the file →
the editor receives ``file:synced``.

One live session with a real local agent; the editor joins ``project:<id>`` with the user's token and
sends ``RATE`` edits per second over ``PATHS`` files, each with a rising version. The latency is the
editor's own clock from ``send_broadcast`` to the matching ``file:synced``. Afterwards every file in
the agent's project folder is hashed and compared with what the editor sent last.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.results import Figure, Results, not_measured, percentile
from bench.rss import cpu_seconds
from bench.stack import Stack
from bench.time_to_preview import create_and_join, end_session, user_headers

GROUP = "edit_to_ack"
RATE = 100
PATHS = 20
FILLER = "export const value = 1;\n" * 40  # about 1 KB, a typical small source file
CHANNEL_CONFIG: Any = {"config": {"broadcast": {"self": False, "ack": False}, "presence": {"key": ""}, "private": True}}


@dataclass
class Editor:
    sent: dict[tuple[str, int], float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    agent_latencies: list[float] = field(default_factory=list)
    latest: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def on_broadcast(self, message: Any) -> None:
        payload = message.get("payload") or {}
        if message.get("event") == "agent:error":
            self.errors.append(payload)
            return
        if message.get("event") != "file:synced":
            return
        sent = self.sent.get((str(payload.get("path")), int(payload.get("version") or 0)))
        if sent is not None:
            self.latencies.append(time.perf_counter() - sent)
            if isinstance(payload.get("latency_ms"), int | float):
                self.agent_latencies.append(payload["latency_ms"] / 1000)


async def stream_edits(realtime_url: str, token: str, project: str, seconds: float, editor: Editor) -> float:
    """Send edits at ``RATE`` per second for ``seconds``; return the achieved rate."""
    from realtime import AsyncRealtimeClient

    client = AsyncRealtimeClient(realtime_url, token=token, auto_reconnect=False)
    await client.connect()
    channel = client.channel(f"project:{project}", CHANNEL_CONFIG)
    channel.on_broadcast("*", editor.on_broadcast)
    joined = asyncio.Event()
    await channel.subscribe(lambda state, error: joined.set() if str(state.value) == "SUBSCRIBED" else None)
    await asyncio.wait_for(joined.wait(), 10)
    try:
        rate = await _send(channel, seconds, editor)
        await _until(lambda: len(editor.latencies) >= len(editor.sent), timeout=5)
    finally:
        await client.close()
    return rate


async def _send(channel: Any, seconds: float, editor: Editor) -> float:
    count, begin = int(seconds * RATE), time.perf_counter()
    for index in range(count):
        path, version = f"src/file{index % PATHS}.ts", index // PATHS + 1
        content = f"// edit {index}\n{FILLER}"
        editor.latest[path] = hashlib.sha256(content.encode()).hexdigest()
        editor.sent[(path, version)] = time.perf_counter()
        payload = {
            "path": path,
            "content": content,
            "encoding": "utf-8",
            "version": version,
            "sent_at": time.time() * 1000,
        }
        await channel.send_broadcast("file:update", payload)
        await asyncio.sleep(max(0.0, begin + (index + 1) / RATE - time.perf_counter()))
    return count / (time.perf_counter() - begin)


async def _until(condition: Any, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def mismatched_files(project_dir: Path, latest: dict[str, str]) -> int:
    """How many of the editor's files differ on the agent's disk (missing counts as different)."""
    mismatched = 0
    for path, digest in latest.items():
        target = project_dir / path
        if not target.is_file() or hashlib.sha256(target.read_bytes()).hexdigest() != digest:
            mismatched += 1
    return mismatched


def project_dir_of(stack: Stack, session: dict[str, Any]) -> Path:
    from machines.models import Machine

    machine = Machine.objects.get(id=session["machine_id"])
    return stack.var_dir / "machines" / machine.provider_machine_id / "project"


def run(stack: Stack, results: Results, *, quick: bool) -> None:
    seconds = 3.0 if quick else 20.0
    user, project = uuid.uuid4(), f"bench-edits-{uuid.uuid4().hex[:8]}"
    headers = user_headers(user)
    with httpx.Client(timeout=30) as client:
        session = create_and_join(client, stack.base_url, headers, project).session
        editor = Editor()
        token = headers["Authorization"].removeprefix("Bearer ")
        agent = stack.agent_pids()
        cpu_before, began = cpu_seconds(agent[0]) if len(agent) == 1 else None, time.monotonic()
        rate = asyncio.run(stream_edits(f"{stack.base_url}/realtime/v1", token, project, seconds, editor))
        cpu = (
            (cpu_seconds(agent[0]) - cpu_before) / (time.monotonic() - began) * 100 if cpu_before is not None else None
        )
        mismatched = mismatched_files(project_dir_of(stack, session), editor.latest)
        end_session(client, stack.base_url, headers, session["id"])
    results.add(*figures(editor, rate, mismatched, seconds))
    results.add(
        Figure(GROUP, "agent_cpu_during_edits", cpu, "% of a core", note="the agent process while the edits stream")
        if cpu is not None
        else not_measured(GROUP, "agent_cpu_during_edits", "% of a core", f"found {len(agent)} agent processes")
    )


def figures(editor: Editor, rate: float, mismatched: int, seconds: float) -> list[Figure]:
    note = f"{len(editor.sent)} edits over {PATHS} files in {seconds:.0f} s, official Python client (vsn 1.0.0)"
    acked = len(editor.latencies) / max(1, len(editor.sent))
    return [
        Figure(GROUP, "p50", percentile(editor.latencies, 0.5) * 1000, "ms", 10, note=note),
        Figure(GROUP, "p99", percentile(editor.latencies, 0.99) * 1000, "ms", 50, note=note),
        Figure(GROUP, "max", max(editor.latencies, default=float("nan")) * 1000, "ms"),
        Figure(
            GROUP,
            "rate_achieved",
            rate,
            "edits/s",
            RATE * 0.99,
            ">=",
            note="the load asked for: 100 edits/s (1 % pacing slack)",
        ),
        Figure(GROUP, "acked_fraction", acked, "ratio", 1.0, ">=", note=f"{len(editor.errors)} agent:error replies"),
        Figure(
            GROUP, "files_mismatched_on_disk", mismatched, "files", 0, "<=", note="sha256 of each file after the run"
        ),
        Figure(
            GROUP,
            "agent_reported_p50",
            percentile(editor.agent_latencies, 0.5) * 1000,
            "ms",
            note="the agent's latency_ms (sent_at → written), same host clock",
        ),
    ]
