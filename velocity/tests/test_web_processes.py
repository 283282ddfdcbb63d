"""``velocity.run web`` with ``REDIS_URL``: ``WEB_CONCURRENCY`` daphnes on one socket, all stopped by Ctrl-C;
without Redis, one process whatever ``WEB_CONCURRENCY`` says."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
import websockets
from django.conf import settings

from realtime_bridge.testing import service_token
from velocity.run import _children, listening_sockets, web_processes
from velocity.testing import REPO_ROOT, embedded_env, free_port, manage, require, wait_for_http, wait_until
from velocity.tests.test_up import processes_with_env

REDIS = "redis://127.0.0.1:6379/11"


def test_with_redis_the_web_runs_web_concurrency_processes_defaulting_to_the_cores() -> None:
    assert web_processes({"REDIS_URL": REDIS}, cores=2) == 2
    assert web_processes({"REDIS_URL": REDIS, "WEB_CONCURRENCY": "3"}, cores=2) == 3
    assert web_processes({"REDIS_URL": REDIS, "WEB_CONCURRENCY": " "}, cores=None) == 1


def test_without_redis_the_web_is_one_process_whatever_web_concurrency_says() -> None:
    assert web_processes({"WEB_CONCURRENCY": "4"}, cores=8) == 1
    assert web_processes({}, cores=8) == 1


@pytest.mark.parametrize("value", ["two", "0", "-1", "1.5"])
def test_a_web_concurrency_that_is_not_a_positive_whole_number_is_refused_clearly(value: str) -> None:
    with pytest.raises(SystemExit, match="WEB_CONCURRENCY"):
        web_processes({"REDIS_URL": REDIS, "WEB_CONCURRENCY": value}, cores=2)


def test_each_web_process_serves_an_inherited_socket_of_its_own_instead_of_binding_a_port() -> None:
    webs = _children(["web"], web_fds=[7, 8, 9])
    assert [argv[argv.index("--fd") + 1] for argv in webs] == ["7", "8", "9"]
    assert all("-p" not in argv for argv in webs)
    assert "--fd" not in _children(["web"])[0]


def test_the_web_sockets_share_one_port_and_the_kernel_spreads_connections_across_them() -> None:
    """SO_REUSEPORT: with one shared socket, the daphne that woke first accepted a whole burst of connections."""
    sockets = listening_sockets("127.0.0.1", free_port(), 2)
    try:
        assert sockets[0].getsockname() == sockets[1].getsockname()
        accepted = [0, 0]
        clients = [socket.create_connection(sockets[0].getsockname()) for _ in range(64)]
        for index, sock in enumerate(sockets):
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                while True:
                    sock.accept()[0].close()
                    accepted[index] += 1
        assert sum(accepted) == 64 and min(accepted) > 0, accepted
        for client in clients:
            client.close()
    finally:
        for sock in sockets:
            sock.close()


def _daphnes(marker: Path) -> list[int]:
    return [pid for pid in processes_with_env(str(marker)) if b"daphne" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _served_by(log: Path) -> set[str]:
    return set(re.findall(r"http request .*pid=(\d+)", log.read_text(errors="replace")))


def _run_web(tmp_path: Path, **extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    env = embedded_env(tmp_path, PORT=str(port), HOST="127.0.0.1", LOG_LEVEL="info", LOG_FORMAT="console", **extra)
    manage(env, "migrate", "-v0")
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        argv = [sys.executable, "-m", "velocity.run", "web"]
        supervisor = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/health", timeout=60)
    return supervisor, base, log


@pytest.mark.slow
def test_with_redis_two_daphnes_serve_requests_and_ctrl_c_stops_them_all(tmp_path: Path) -> None:
    require(os.environ.get("REDIS_URL"), "several web processes need Redis for their channel layer")
    supervisor, base, log = _run_web(tmp_path, REDIS_URL=REDIS, WEB_CONCURRENCY="2")
    try:
        assert len(_daphnes(tmp_path)) == 2

        def two_pids_served() -> bool:
            for _ in range(10):  # a new connection each: the kernel hands it to whichever daphne accepts first
                assert httpx.get(f"{base}/health", headers={"Connection": "close"}).status_code == 200
            return len(_served_by(log)) >= 2

        wait_until(two_pids_served, timeout=30, what="requests served by both daphnes")
        assert _served_by(log) == {str(pid) for pid in _daphnes(tmp_path)}
    finally:
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0
    wait_until(lambda: processes_with_env(str(tmp_path)) == [], timeout=15, what="every process gone")


@pytest.mark.slow
def test_the_embedded_default_stays_one_process_even_when_asked_for_more(tmp_path: Path) -> None:
    supervisor, base, log = _run_web(tmp_path, WEB_CONCURRENCY="4")
    try:
        for _ in range(5):
            assert httpx.get(f"{base}/health", headers={"Connection": "close"}).status_code == 200
        assert len(_daphnes(tmp_path)) == 1
        wait_until(lambda: len(_served_by(log)) == 1, timeout=10, what="the request log")
        assert "WEB_CONCURRENCY is ignored without REDIS_URL" in log.read_text()
    finally:
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0
    wait_until(lambda: processes_with_env(str(tmp_path)) == [], timeout=15, what="every process gone")


def _serving_pid(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server end of the TCP connection from ``client_port``."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{server_port:04X}") and fields[2].endswith(f":{client_port:04X}"):
            inode = fields[9]
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
    return None


def _frame(event: str, payload: Mapping[str, object], ref: str) -> str:
    return json.dumps({"topic": "realtime:across", "event": event, "payload": payload, "ref": ref, "join_ref": "1"})


@pytest.mark.slow
async def test_with_redis_a_broadcast_reaches_a_socket_served_by_another_daphne(tmp_path: Path) -> None:
    require(os.environ.get("REDIS_URL"), "several web processes need Redis for their channel layer")
    supervisor, base, _ = _run_web(
        tmp_path, REDIS_URL=REDIS, WEB_CONCURRENCY="2", SUPABASE_JWT_SECRET=settings.SUPABASE_JWT_SECRET
    )
    url = base.replace("http", "ws") + f"/realtime/v1/websocket?apikey={service_token()}&vsn=1.0.0"
    daphnes, port = _daphnes(tmp_path), int(base.rsplit(":", 1)[1])
    opened: dict[int | None, websockets.ClientConnection] = {}
    try:
        # The kernel picks the daphne that accepts: open sockets until both have one. A busy machine can hand
        # many accepts in a row to one process, so each try lets both return to their accept loop first, and a
        # socket served by a daphne that already has one is closed at once.
        for _ in range(200):
            socket = await websockets.connect(url)
            pid = _serving_pid(port, socket.local_address[1], daphnes)
            if pid in opened:
                await socket.close()
            else:
                opened[pid] = socket
            if all(pid in opened for pid in daphnes):
                break
            await asyncio.sleep(0.02)
        assert all(pid in opened for pid in daphnes), f"200 sockets, served only by {sorted(map(str, opened))}"
        sender, receiver = (opened[pid] for pid in daphnes)
        for socket in (sender, receiver):
            await socket.send(_frame("phx_join", {"config": {}}, "1"))
            assert json.loads(await asyncio.wait_for(socket.recv(), 10))["payload"]["status"] == "ok"
        payload = {"type": "broadcast", "event": "file:update", "payload": {"path": "a.js"}}
        await sender.send(_frame("broadcast", payload, "2"))
        frame = json.loads(await asyncio.wait_for(receiver.recv(), 10))
        assert frame["payload"]["payload"] == {"path": "a.js"}
    finally:
        for socket in opened.values():
            await socket.close()
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0
