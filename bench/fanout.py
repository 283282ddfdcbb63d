"""Realtime fan-out through the embedded endpoint, with ``bench/realtime_fanout.py`` doing the sending.

Three runs against the stack's daphne: 1,000 sockets on one topic; 1,000 sockets spread over 100
topics with ten times the send rate (the same deliveries per second, many more topics); and sockets
held: open many, keep them joined, then check each still answers a heartbeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import websockets

from bench import realtime_fanout
from bench.results import Figure, Results
from bench.rss import rss_mib
from bench.stack import Stack
from velocity.testing import free_port, wait_for_port

GROUP = "fanout"
REPO_ROOT = Path(__file__).resolve().parent.parent
RECEIVE_NOTE = "send → the kernel's receive timestamp on the client socket (SO_TIMESTAMPNS), same host clock"
CLIENT_NOTE = "send → the benchmark client parsing the frame (adds the client's own queue on the shared cores)"


class ReferenceServer:
    """This module in its own process on a free loopback port (``port`` and ``process`` as the bench expects)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ReferenceServer:
        argv = [sys.executable, "-m", "bench.reference_ws", "--port", str(self.port)]
        self.process = subprocess.Popen(argv, cwd=REPO_ROOT)  # noqa: S603  (our interpreter and module)
        wait_for_port(self.port, self.process)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _service_token() -> str:
    from velocity.auth import issue_token

    return issue_token(sub=None, role="service_role", ttl=3600)


def _run_fanout(server: Any, *, sockets: int, topics: int, rate: float, seconds: float) -> dict[str, Any]:
    """One fan-out run against ``server`` (``port`` and ``process``): our daphne or the reference."""
    args = argparse.Namespace(sockets=sockets, topics=topics, rate=rate, seconds=seconds)
    began = time.process_time()
    outcome = dict(asyncio.run(realtime_fanout.bench(args, _service_token(), server)))
    # The clients run on the same cores as the server: their CPU says how much of the machine they took.
    outcome["client_cpu_us_per_delivery"] = round(
        (time.process_time() - began) / max(1, outcome["deliveries"]) * 1e6, 1
    )
    return outcome


def _ours(stack: Stack) -> SimpleNamespace:
    assert stack.server is not None  # noqa: S101  (started by the runner)
    return SimpleNamespace(port=stack.port, process=stack.server)


def fanout_figures(label: str, outcome: dict[str, Any]) -> list[Figure]:
    note = (
        f"{outcome['sockets']} sockets, {outcome['topics']} topic(s), {outcome['broadcasts']} broadcasts; "
        f"CPU per delivery: server {outcome['server_cpu_us_per_delivery']} µs, "
        f"benchmark clients {outcome['client_cpu_us_per_delivery']} µs (same cores)"
    )
    delivered = outcome["deliveries"] / max(1, outcome["expected"])
    return [
        Figure(GROUP, f"{label}_deliveries_per_s", outcome["deliveries_per_s"], "deliveries/s", 10_000, ">=", note),
        Figure(GROUP, f"{label}_p50", outcome["p50_ms"], "ms", note=RECEIVE_NOTE),
        Figure(GROUP, f"{label}_p99", outcome["p99_ms"], "ms", 50, note=RECEIVE_NOTE),
        Figure(GROUP, f"{label}_client_p99", outcome["client_p99_ms"], "ms", note=CLIENT_NOTE),
        Figure(GROUP, f"{label}_delivered_fraction", delivered, "ratio", 1.0, ">="),
    ]


async def _hold(url: str, count: int, topics: int, hold: float, server_pid: int) -> tuple[int, float]:
    """Open ``count`` joined sockets, keep them ``hold`` seconds; how many still answer a heartbeat, and
    the server's memory while they are held."""
    sockets: list[Any] = []
    for start in range(0, count, 100):
        batch = range(start, min(count, start + 100))
        sockets += await asyncio.gather(
            *(realtime_fanout._join(url, [realtime_fanout.topic(i % topics)]) for i in batch)
        )
    await asyncio.sleep(hold)
    memory = rss_mib(server_pid)
    alive = sum(await asyncio.gather(*(_answers_heartbeat(s) for s in sockets)))
    await asyncio.gather(*(s.close() for s in sockets))
    return alive, memory


async def _answers_heartbeat(socket: Any) -> bool:
    try:
        await socket.send(json.dumps({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": "hb"}))
        async with asyncio.timeout(15):
            while True:
                frame = json.loads(await socket.recv())
                if frame.get("ref") == "hb":
                    return bool(frame["payload"]["status"] == "ok")
    except (TimeoutError, websockets.ConnectionClosed):
        return False


def held_figures(stack: Stack, count: int, hold: float) -> list[Figure]:
    assert stack.server is not None  # noqa: S101
    url = f"ws://127.0.0.1:{stack.port}/realtime/v1/websocket?apikey={_service_token()}&vsn=1.0.0"
    before = rss_mib(stack.server.pid)
    began = time.monotonic()
    alive, held = asyncio.run(_hold(url, count, 100, hold, stack.server.pid))
    note = f"{count} opened and joined over 100 topics, held {hold:.0f} s, then each sent a heartbeat"
    return [
        Figure(GROUP, "sockets_held", alive, "sockets", 2_000, ">=", note=note),
        Figure(GROUP, "sockets_held_seconds", time.monotonic() - began, "s", note="open, join, hold, check"),
        Figure(GROUP, "server_rss_before_sockets", before, "MiB", note="daphne before the held sockets"),
        Figure(GROUP, "server_rss_with_sockets", held, "MiB", note=f"daphne holding {count} joined sockets"),
    ]


def reference_figures(label: str, ours: dict[str, Any], reference: dict[str, Any]) -> list[Figure]:
    """The reference server's figures under the same load, and ours as a ratio to them."""
    note = (
        f"bench/reference_ws.py, same clients and load; CPU per delivery: server "
        f"{reference['server_cpu_us_per_delivery']} µs"
    )
    ratio = ours["deliveries_per_s"] / max(1, reference["deliveries_per_s"])
    return [
        Figure(GROUP, f"reference_{label}_deliveries_per_s", reference["deliveries_per_s"], "deliveries/s", note=note),
        Figure(GROUP, f"reference_{label}_p99", reference["p99_ms"], "ms", note=RECEIVE_NOTE),
        Figure(GROUP, f"reference_{label}_client_p99", reference["client_p99_ms"], "ms", note=CLIENT_NOTE),
        Figure(GROUP, f"{label}_deliveries_ratio_to_reference", round(ratio, 3), "ratio", 0.5, ">="),
    ]


def capacity_figures(ours: dict[str, Any], reference: dict[str, Any]) -> list[Figure]:
    """Deliveries per second each server sustains when asked for ten times the 10,000/s load, and per
    second of server CPU (what one core would do: steadier than the wall clock on a shared machine)."""
    note = (
        f"{ours['sockets']} sockets on 1 topic asked for 100,000 deliveries/s; first to last delivery; "
        f"best of two runs each, alternating; server CPU per delivery: ours {ours['server_cpu_us_per_delivery']} µs, "
        f"reference {reference['server_cpu_us_per_delivery']} µs; clients share the cores"
    )
    ratio = ours["sustained_per_s"] / max(1, reference["sustained_per_s"])
    per_cpu = reference["server_cpu_us_per_delivery"] / max(0.1, ours["server_cpu_us_per_delivery"])
    return [
        Figure(GROUP, "capacity_deliveries_per_s", ours["sustained_per_s"], "deliveries/s", note=note),
        Figure(GROUP, "reference_capacity_deliveries_per_s", reference["sustained_per_s"], "deliveries/s", note=note),
        Figure(GROUP, "capacity_ratio_to_reference", round(ratio, 3), "ratio", 0.5, ">=", note=note),
        Figure(GROUP, "deliveries_per_cpu_second_ratio_to_reference", round(per_cpu, 3), "ratio", note=note),
    ]


def _floods(ours: Any, reference: Any, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each server's best of two floods, taken in turn: the shared machine's load changes by the second,
    and alternating gives both servers the same chances."""
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "reference": []}
    for _ in range(2):
        for name, server in (("ours", ours), ("reference", reference)):
            runs[name].append(_run_fanout(server, sockets=1000, topics=1, rate=100.0, seconds=seconds))
    best = {name: max(outcomes, key=lambda o: o["sustained_per_s"]) for name, outcomes in runs.items()}
    return best["ours"], best["reference"]


def run(stack: Stack, results: Results, *, quick: bool) -> None:
    seconds = 3.0 if quick else 10.0
    loads = {"one_topic": (1, 10.0), "many_topics": (100, 1000.0)}  # (topics, broadcasts/s): 10,000 deliveries/s
    flood = 2.0 if quick else 4.0  # seconds of 1000 sockets on one topic asked for 100 broadcasts/s
    ours = {
        label: _run_fanout(_ours(stack), sockets=1000, topics=t, rate=r, seconds=seconds)
        for label, (t, r) in loads.items()
    }
    with ReferenceServer() as server:
        reference = {
            label: _run_fanout(server, sockets=1000, topics=t, rate=r, seconds=seconds)
            for label, (t, r) in loads.items()
        }
        ours_flood, reference_flood = _floods(_ours(stack), server, flood)
    for label in loads:
        results.add(*fanout_figures(label, ours[label]), *reference_figures(label, ours[label], reference[label]))
    results.add(*capacity_figures(ours_flood, reference_flood))
    results.add(*held_figures(stack, 2000 if quick else 3000, 1.0 if quick else 15.0))
