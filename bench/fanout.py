"""Realtime fan-out through the embedded endpoint, with ``bench/realtime_fanout.py`` doing the sending.

Three runs against the stack's daphne: 1,000 sockets on one topic; 1,000 sockets spread over 100
topics with ten times the send rate (the same deliveries per second, many more topics); and sockets
held: open many, keep them joined, then check each still answers a heartbeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import websockets

from bench import realtime_fanout
from bench.results import Figure, Results
from bench.rss import rss_mib
from bench.stack import Stack

GROUP = "fanout"


def _service_token() -> str:
    from velocity.auth import issue_token

    return issue_token(sub=None, role="service_role", ttl=3600)


def _run_fanout(stack: Stack, *, sockets: int, topics: int, rate: float, seconds: float) -> dict[str, Any]:
    assert stack.server is not None  # noqa: S101  (started by the runner)
    server = SimpleNamespace(port=stack.port, process=stack.server)
    args = argparse.Namespace(sockets=sockets, topics=topics, rate=rate, seconds=seconds)
    began = time.process_time()
    outcome = dict(asyncio.run(realtime_fanout.bench(args, _service_token(), server)))
    # The clients run on the same cores as the server: their CPU says how much of the machine they took.
    outcome["client_cpu_us_per_delivery"] = round(
        (time.process_time() - began) / max(1, outcome["deliveries"]) * 1e6, 1
    )
    return outcome


def fanout_figures(label: str, outcome: dict[str, Any]) -> list[Figure]:
    note = (
        f"{outcome['sockets']} sockets, {outcome['topics']} topic(s), {outcome['broadcasts']} broadcasts; "
        f"CPU per delivery: server {outcome['server_cpu_us_per_delivery']} µs, "
        f"benchmark clients {outcome['client_cpu_us_per_delivery']} µs (same cores)"
    )
    delivered = outcome["deliveries"] / max(1, outcome["expected"])
    return [
        Figure(GROUP, f"{label}_deliveries_per_s", outcome["deliveries_per_s"], "deliveries/s", 10_000, ">=", note),
        Figure(GROUP, f"{label}_p50", outcome["p50_ms"], "ms", note="send → receive, same host clock"),
        Figure(GROUP, f"{label}_p99", outcome["p99_ms"], "ms", 50, note="send → receive, same host clock"),
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


def run(stack: Stack, results: Results, *, quick: bool) -> None:
    seconds = 3.0 if quick else 10.0
    one = _run_fanout(stack, sockets=1000, topics=1, rate=10, seconds=seconds)
    results.add(*fanout_figures("one_topic", one))
    many = _run_fanout(stack, sockets=1000, topics=100, rate=1000, seconds=seconds)
    results.add(*fanout_figures("many_topics", many))
    results.add(*held_figures(stack, 2000 if quick else 3000, 1.0 if quick else 15.0))
