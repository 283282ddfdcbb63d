"""Idle memory of the agent without a dev server: ``python -m preview_agent.bench_memory``.

Starts the agent on a small static project (so no dev server runs), lets it settle, serves a few
requests, and prints its resident set size from ``/proc``. Without ``--realtime-url`` the agent
points at a closed local port: the realtime client is still imported and keeps retrying, which
is the realistic worst case for memory short of a live channel.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from preview_agent.devserver import free_port


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait before measuring")
    parser.add_argument("--requests", type=int, default=200, help="preview requests served before measuring")
    parser.add_argument("--realtime-url", default="", help="a realtime endpoint (default: a closed port)")
    parser.add_argument("--realtime-key", default="bench")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        (project / "index.html").write_text("<h1>bench</h1>")
        port = free_port()
        realtime_url = args.realtime_url or f"http://127.0.0.1:{free_port()}/realtime/v1"
        env = {
            **os.environ,
            "PROJECT_ID": "bench",
            "PROJECT_DIR": folder,
            "PORT": str(port),
            "HOST": "127.0.0.1",
        }
        env |= {"REALTIME_URL": realtime_url, "REALTIME_KEY": args.realtime_key, "LOG_LEVEL": "ERROR"}
        agent = subprocess.Popen([sys.executable, "-m", "preview_agent"], env=env)  # noqa: S603
        try:
            return measure(agent, port, args.settle, args.requests)
        finally:
            agent.terminate()
            agent.wait(10)


def measure(agent: subprocess.Popen[bytes], port: int, settle: float, requests: int) -> int:
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=1).read()  # noqa: S310 - loopback
            break
        except OSError:
            time.sleep(0.1)
    time.sleep(settle)
    idle = rss_kib(agent.pid)
    for _ in range(requests):
        urllib.request.urlopen(url + "/", timeout=5).read()  # noqa: S310
    served = rss_kib(agent.pid)
    health = json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())  # noqa: S310
    print(f"python: {sys.executable}")
    print(f"realtime joined: {health['supabaseConnected']}, dev server: {health['devServerKind']}")
    print(f"idle RSS: {idle['VmRSS'] / 1024:.1f} MiB")
    rss, peak = served["VmRSS"] / 1024, served["VmHWM"] / 1024
    print(f"after {requests} requests: RSS {rss:.1f} MiB, peak {peak:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
