"""Edit to ack under the ``supabase`` limits profile: a typist's 100 edits a second → the editor paces and
coalesces them into ``files:snapshot`` broadcasts (official Python client) → the agent writes the files →
the editor receives the acks (``files:synced``, or ``file:synced``).

One live session with a real local agent; the server restarts with ``REALTIME_LIMITS_PROFILE=supabase``
for this group (100 events a second for the whole endpoint, counting every delivery). The editor keeps the
newest content of each changed path (as clients/js does), holds a path while its previous version is in
flight, and sends the rest as one ``files:snapshot``, at most ``SENDS_PER_SECOND`` a second. An edit counts
as acknowledged when an ack of its path arrives with its version or a newer one (that newer version was
written over it: the edit was merged, never lost).
Measured: whether the endpoint refused or shut anything (its ``velocity_realtime_limited_total`` and the
editor's channel state), the endpoint's own events a second (the tick averages it decides on), every edit
acknowledged or superseded, and every file equal by sha256 on the agent's disk at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from collections import defaultdict, deque
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
# Each broadcast counts twice on Supabase (sent, delivered to the agent), its ack twice more: 8 batches a
# second are about 32 of the project's 100 events a second.
SENDS_PER_SECOND = 8
IN_FLIGHT_TIMEOUT = 2.0  # a batch whose ack never came no longer holds the next one back
FILLER = "export const value = 1;\n" * 40  # about 1 KB, a typical small source file
CHANNEL_CONFIG: Any = {"config": {"broadcast": {"self": False, "ack": False}, "presence": {"key": ""}, "private": True}}


@dataclass
class Editor:
    """The editor's side: edits made, coalesced while their file has a version in flight, acks matched to them."""

    made: dict[str, deque[tuple[int, float]]] = field(default_factory=lambda: defaultdict(deque))
    edits: int = 0
    latencies: list[float] = field(default_factory=list)
    agent_latencies: list[float] = field(default_factory=list)
    latest: dict[str, str] = field(default_factory=dict)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)
    in_flight: dict[str, tuple[int, float]] = field(default_factory=dict)  # path -> (version, sent at)
    acked: dict[str, int] = field(default_factory=dict)
    sends: int = 0
    merged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    channel_errors: list[str] = field(default_factory=list)

    def edit(self, path: str, version: int, content: str) -> None:
        self.edits += 1
        self.latest[path] = hashlib.sha256(content.encode()).hexdigest()
        self.made[path].append((version, time.perf_counter()))
        if path in self.pending:
            self.merged += 1  # the older content is replaced before it was sent: merged, not lost
        self.pending[path] = {"path": path, "content": content, "encoding": "utf-8", "version": version}

    def take_batch(self, now: float) -> list[dict[str, Any]]:
        """The newest pending content of every path that has no version in flight (a path's next version
        waits for the ack of the one on its way, merging whatever is typed meanwhile)."""
        for path, (_, sent) in list(self.in_flight.items()):
            if now - sent >= IN_FLIGHT_TIMEOUT:
                del self.in_flight[path]
        files = [self.pending.pop(path) for path in list(self.pending) if path not in self.in_flight]
        self.in_flight.update({f["path"]: (f["version"], now) for f in files})
        return files

    def on_broadcast(self, message: Any) -> None:
        payload = message.get("payload") or {}
        event = message.get("event")
        if event == "agent:error":
            self.errors.append(payload)
        elif event == "file:synced":
            self._acked(payload)
        elif event == "files:synced":
            for entry in payload.get("files") or []:
                self._acked(entry)

    def _acked(self, entry: dict[str, Any]) -> None:
        path, version, now = str(entry.get("path")), int(entry.get("version") or 0), time.perf_counter()
        self.acked[path] = max(version, self.acked.get(path, 0))
        waiting = self.made[path]
        while waiting and waiting[0][0] <= version:
            self.latencies.append(now - waiting.popleft()[1])
        if isinstance(entry.get("latency_ms"), int | float):
            self.agent_latencies.append(entry["latency_ms"] / 1000)
        if self.in_flight.get(path, (version + 1, 0.0))[0] <= version:
            del self.in_flight[path]

    def on_state(self, state: Any, error: Exception | None) -> None:
        if str(getattr(state, "value", state)) != "SUBSCRIBED":
            self.channel_errors.append(f"{state}: {error}")

    @property
    def uncovered(self) -> int:
        """Edits with no ack of their version or a newer one."""
        return sum(len(waiting) for waiting in self.made.values())


async def stream_edits(realtime_url: str, token: str, project: str, seconds: float, editor: Editor) -> float:
    """Type at ``RATE`` edits a second for ``seconds`` while the sender paces; return the typing rate."""
    from realtime import AsyncRealtimeClient

    client = AsyncRealtimeClient(realtime_url, token=token, auto_reconnect=False)
    await client.connect()
    channel = client.channel(f"project:{project}", CHANNEL_CONFIG)
    channel.on_broadcast("*", editor.on_broadcast)
    joined = asyncio.Event()

    def on_state(state: Any, error: Exception | None) -> None:
        if str(state.value) == "SUBSCRIBED":
            joined.set()
        editor.on_state(state, error)

    await channel.subscribe(on_state)
    await asyncio.wait_for(joined.wait(), 10)
    typing = asyncio.Event()
    sender = asyncio.create_task(_send_loop(channel, editor, typing))
    try:
        rate = await _type(editor, seconds)
        typing.set()
        await sender
        await _until(lambda: editor.uncovered == 0, timeout=10)
    finally:
        sender.cancel()
        await client.close()
    return rate


async def _type(editor: Editor, seconds: float) -> float:
    count, begin = int(seconds * RATE), time.perf_counter()
    for index in range(count):
        path, version = f"src/file{index % PATHS}.ts", index // PATHS + 1
        editor.edit(path, version, f"// edit {index}\n{FILLER}")
        await asyncio.sleep(max(0.0, begin + (index + 1) / RATE - time.perf_counter()))
    return count / (time.perf_counter() - begin)


async def _send_loop(channel: Any, editor: Editor, typing_done: asyncio.Event) -> None:
    """At most SENDS_PER_SECOND batches a second; ends once the typing ended and everything is sent."""
    last = 0.0
    while not (typing_done.is_set() and not editor.pending):
        await asyncio.sleep(max(0.005, last + 1 / SENDS_PER_SECOND - time.perf_counter()))
        files = editor.take_batch(time.perf_counter()) if editor.pending else []
        if files:
            payload = {"mode": "merge", "files": files, "sent_at": time.time() * 1000}
            await channel.send_broadcast("files:snapshot", payload)
            editor.sends, last = editor.sends + 1, time.perf_counter()


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
    """The server runs this group under the ``supabase`` profile, and goes back to the stack's after."""
    previous = stack.env.get("REALTIME_LIMITS_PROFILE", "")
    _restart_server(stack, "supabase")
    try:
        _measure(stack, results, quick=quick)
    finally:
        _restart_server(stack, previous)


def _restart_server(stack: Stack, profile: str) -> None:
    stack.env["REALTIME_LIMITS_PROFILE"] = profile
    stack.stop_server()
    stack.start_server()


def _measure(stack: Stack, results: Results, *, quick: bool) -> None:
    seconds = 3.0 if quick else 20.0
    user, project = uuid.uuid4(), f"bench-edits-{uuid.uuid4().hex[:8]}"
    headers = user_headers(user)
    with httpx.Client(timeout=30) as client, Endpoint(stack.base_url) as endpoint:
        session = create_and_join(client, stack.base_url, headers, project).session
        editor = Editor()
        token = headers["Authorization"].removeprefix("Bearer ")
        agent = stack.agent_pids()
        cpu_before, began = cpu_seconds(agent[0]) if len(agent) == 1 else None, time.monotonic()
        limited_before = endpoint.limited()
        rate = asyncio.run(stream_edits(f"{stack.base_url}/realtime/v1", token, project, seconds, editor))
        cpu = (
            (cpu_seconds(agent[0]) - cpu_before) / (time.monotonic() - began) * 100 if cpu_before is not None else None
        )
        limited = endpoint.limited() - limited_before
        mismatched = mismatched_files(project_dir_of(stack, session), editor.latest)
        end_session(client, stack.base_url, headers, session["id"])
    results.add(*figures(editor, rate, mismatched, seconds))
    results.add(*limit_figures(editor, limited, endpoint.peak_events))
    results.add(
        Figure(GROUP, "agent_cpu_during_edits", cpu, "% of a core", note="the agent process while the edits stream")
        if cpu is not None
        else not_measured(GROUP, "agent_cpu_during_edits", "% of a core", f"found {len(agent)} agent processes")
    )


class Endpoint:
    """The server's /metrics, read every second while the edits run: its limit refusals and tick averages."""

    def __init__(self, base_url: str) -> None:
        self.url, self.peak_events = f"{base_url}/metrics", 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Endpoint:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _poll(self) -> None:
        while not self._stop.wait(1.0):
            rate = self._samples("velocity_realtime_tenant_rate", 'counter="events"')
            self.peak_events = max(self.peak_events, rate)

    def limited(self) -> float:
        return self._samples("velocity_realtime_limited_total", "")

    def _samples(self, name: str, label: str) -> float:
        try:
            text = httpx.get(self.url, timeout=5).text
        except httpx.HTTPError:
            return 0.0
        lines = (line for line in text.splitlines() if line.startswith(name) and label in line)
        return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def limit_figures(editor: Editor, limited: float, peak_events: float) -> list[Figure]:
    refused = f"{len(editor.channel_errors)} editor channel errors {editor.channel_errors[:2]}"
    return [
        Figure(
            GROUP,
            "limit_errors",
            limited + len(editor.channel_errors),
            "errors",
            0,
            "<=",
            note=f"supabase profile: the endpoint's velocity_realtime_limited_total during the run; {refused}",
        ),
        Figure(
            GROUP,
            "endpoint_events_per_second_peak",
            peak_events,
            "events/s",
            100,
            "<",
            note="the tenant-wide tick average the endpoint decides on (sent + delivered), read every second",
        ),
        Figure(GROUP, "editor_sends_per_second", editor.sends / max(1e-9, editor.edits / RATE), "broadcasts/s"),
        Figure(
            GROUP, "edits_merged_before_sending", editor.merged, "edits", note="replaced by a newer edit of the path"
        ),
    ]


def figures(editor: Editor, rate: float, mismatched: int, seconds: float) -> list[Figure]:
    note = f"{editor.edits} edits over {PATHS} files in {seconds:.0f} s, paced and coalesced, Python client (vsn 1.0.0)"
    covered = (editor.edits - editor.uncovered) / max(1, editor.edits)
    return [
        # Pacing costs latency: an edit waits for the next batch (up to 125 ms) and, when its file has a
        # version on the way, for that ack too.
        Figure(GROUP, "p50", percentile(editor.latencies, 0.5) * 1000, "ms", 250, note=note),
        Figure(GROUP, "p99", percentile(editor.latencies, 0.99) * 1000, "ms", 1000, note=note),
        Figure(GROUP, "max", max(editor.latencies, default=float("nan")) * 1000, "ms"),
        Figure(
            GROUP,
            "rate_achieved",
            rate,
            "edits/s",
            RATE * 0.99,
            ">=",
            note="the typist's edits asked for: 100 edits/s (1 % pacing slack)",
        ),
        Figure(
            GROUP,
            "acked_or_superseded_fraction",
            covered,
            "ratio",
            1.0,
            ">=",
            note=f"an ack of the edit's version or a newer one of its path; {len(editor.errors)} agent:error replies",
        ),
        Figure(
            GROUP, "files_mismatched_on_disk", mismatched, "files", 0, "<=", note="sha256 of each file after the run"
        ),
        Figure(
            GROUP,
            "agent_reported_p50",
            percentile(editor.agent_latencies, 0.5) * 1000,
            "ms",
            note="the agent's latency_ms (batch sent_at → written), same host clock",
        ),
    ]
