"""Fan-out benchmark of the embedded realtime endpoint: many sockets on one topic, one sender.

Starts daphne on a free port (embedded mode, its own var dir), opens `--sockets` vsn 1.0.0 sockets
spread over `--topics` topics `realtime:project:bench-<n>` (default one), sends `--rate` broadcasts
per second in turn on each topic for `--seconds` from one more socket, and prints deliveries per
second and the send-to-receive latency percentiles. `make bench` runs it through `bench/fanout.py`.

    .venv/bin/python bench/realtime_fanout.py --sockets 1000 --rate 10 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "velocity.settings")

from bench import raw_ws  # noqa: E402  (this file also runs as a script)

TOPIC = "realtime:project:bench"


def topic(index: int) -> str:
    return f"{TOPIC}-{index}"


def _setup(var_dir: str) -> str:
    os.environ["VELOCITY_VAR_DIR"] = var_dir
    import django

    django.setup()
    from realtime_bridge.testing import service_token

    return service_token(ttl=3600)


async def _join(url: str, topics: list[str]) -> Any:
    socket = await websockets.connect(url, max_queue=None)
    for name in topics:
        join = {
            "topic": name,
            "event": "phx_join",
            "payload": {"config": {"private": True}},
            "ref": "1",
            "join_ref": "1",
        }
        await socket.send(json.dumps(join))
        await socket.recv()
    return socket


async def _send(socket: Any, rate: float, seconds: float, topics: int = 1) -> int:
    sent, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        payload = {"type": "broadcast", "event": "file:update", "payload": {"t": time.time(), "path": "a.ts"}}
        frame = {"topic": topic(sent % topics), "event": "broadcast", "payload": payload, "ref": None, "join_ref": "1"}
        await socket.send(json.dumps(frame))
        sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
    return sent


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def _join_frame(name: str) -> str:
    join = {"topic": name, "event": "phx_join", "payload": {"config": {"private": True}}, "ref": "1", "join_ref": "1"}
    return json.dumps(join)


async def bench(args: argparse.Namespace, token: str, server: Any) -> dict[str, Any]:
    path = f"/realtime/v1/websocket?apikey={token}&vsn=1.0.0"
    topics = getattr(args, "topics", 1)
    samples: list[raw_ws.Sample] = []
    receivers: list[raw_ws.Receiver] = []
    for start in range(0, args.sockets, 100):
        batch = range(start, min(args.sockets, start + 100))
        joins = [[_join_frame(topic(i % topics))] for i in batch]
        receivers += await asyncio.gather(*(raw_ws.Receiver.join(server.port, path, j, samples) for j in joins))
    sender = await _join(f"ws://127.0.0.1:{server.port}{path}", [topic(i) for i in range(topics)])
    begin, cpu, client_cpu = time.monotonic(), _cpu_seconds(server), time.process_time()
    sent = await _send(sender, args.rate, args.seconds, topics)
    await asyncio.sleep(2)
    elapsed, cpu, client_cpu = time.monotonic() - begin, _cpu_seconds(server) - cpu, time.process_time() - client_cpu
    received = list(samples)
    for receiver in receivers:
        receiver.stop()
    await sender.close()
    return _outcome(args, topics, sent, received, elapsed, cpu, client_cpu)


def _outcome(
    args: argparse.Namespace,
    topics: int,
    sent: int,
    received: list[raw_ws.Sample],
    elapsed: float,
    cpu: float,
    client_cpu: float,
) -> dict[str, Any]:
    latencies = [stamp - sent_at for stamp, _, sent_at in received]
    parsed = [seen - sent_at for _, seen, sent_at in received]
    stamps = [stamp for stamp, _, _ in received]
    span = max(stamps, default=0.0) - min(stamps, default=0.0)
    return {
        "sockets": args.sockets,
        "topics": topics,
        "broadcasts": sent,
        "deliveries": len(latencies),
        "expected": sent * args.sockets // topics,
        "deliveries_per_s": round(len(latencies) / args.seconds),
        # From the first delivery to the last: what the server sustained when asked for more than it can do.
        "sustained_per_s": round(len(latencies) / span) if span > 0 else 0,
        "elapsed_s": round(elapsed, 1),
        # Send (the sender's clock, in the payload) to the kernel's receive time on the client's socket.
        "p50_ms": _ms(latencies, 0.5),
        "p99_ms": _ms(latencies, 0.99),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        # Send to the moment the benchmark client parsed the frame: adds the client's own queue.
        "client_p99_ms": _ms(parsed, 0.99),
        "server_cpu_s": round(cpu, 2),
        "server_cpu_us_per_delivery": round(cpu / max(1, len(latencies)) * 1e6, 1),
        # The clients share the machine's cores with the server: what they take, the server cannot use.
        "client_cpu_us_per_delivery": round(client_cpu / max(1, len(latencies)) * 1e6, 1),
    }


def _ms(values: list[float], fraction: float) -> float:
    return round(_percentile(values, fraction) * 1000, 1)


def _cpu_seconds(server: Any) -> float:
    """User + system CPU time of the server process (Linux /proc)."""
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--topics", type=int, default=1, help="topics the sockets are spread over (at most 100)")
    parser.add_argument("--rate", type=float, default=10.0, help="broadcasts per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="velocity-bench-") as var_dir:
        token = _setup(var_dir)
        from realtime_bridge.testing import RealtimeServer

        server = RealtimeServer(Path(var_dir), REALTIME_LIMITS_PROFILE="unlimited").start()
        try:
            print(json.dumps(asyncio.run(bench(args, token, server))))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
