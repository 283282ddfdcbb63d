"""Pytest fixtures for a real realtime server: daphne serving `velocity.asgi:application`.

Registered by the root conftest (`pytest_plugins`). `realtime_endpoint` yields
`(realtime_http_base, project_key)`: the base is `http://127.0.0.1:PORT/realtime/v1` and
`project_key(project_id)` a token that may use that project. The server process sees the test
database on PostgreSQL (commit rows with `django_db(transaction=True)` tests); on SQLite it runs
on its own empty file, which is enough for service-role tokens (they need no row). `connect`
opens in-process sockets through the real ASGI application (`Socket`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection

from realtime_bridge import relay
from realtime_bridge.routing import realtime_application
from velocity.auth import issue_token
from velocity.testing import free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parent.parent
JS_DIR = REPO_ROOT / "realtime_bridge" / "tests" / "js"


def service_token(*, ttl: int = 3600) -> str:
    return issue_token(sub=None, role="service_role", ttl=ttl)


def server_database_url() -> str | None:
    """The URL of the test database when it is PostgreSQL (another process can open it)."""
    base = os.environ.get("DATABASE_URL", "")
    if not base or connection.vendor != "postgresql":
        return None
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + str(connection.settings_dict["NAME"])))


class RealtimeServer:
    """One daphne process on a free loopback port."""

    def __init__(self, var_dir: Path, *, redis_url: str | None = None, **env: str) -> None:
        self.port = free_port()
        self.env = self._environment(var_dir, redis_url, env)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/realtime/v1"

    def _environment(self, var_dir: Path, redis_url: str | None, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(
            DJANGO_SETTINGS_MODULE="velocity.settings",
            VELOCITY_VAR_DIR=str(var_dir),
            SUPABASE_JWT_SECRET=settings.SUPABASE_JWT_SECRET,
            SUPABASE_URL="",
            PYTHONPATH=str(REPO_ROOT),
            LOG_LEVEL=os.environ.get("REALTIME_TEST_LOG_LEVEL", "warning"),
        )
        database_url = server_database_url()
        if database_url:
            env["DATABASE_URL"] = database_url
        redis_url = redis_url or os.environ.get("REDIS_URL")
        if redis_url:
            env["REDIS_URL"] = redis_url
        env.update(extra)
        return env

    def start(self) -> RealtimeServer:
        argv = [sys.executable, "-m", "daphne", "--access-log", os.devnull, "-b", "127.0.0.1", "-p", str(self.port)]
        # As velocity/run.py starts it: frames up to Realtime's 5 MB.
        argv += ["--websocket-max-message-size", "5000000", "--websocket-max-frame-size", "5000000"]
        argv.append("velocity.asgi:application")
        self.process = subprocess.Popen(argv, cwd=REPO_ROOT, env=self.env)
        wait_for_port(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def ensure_js_harness() -> Path:
    """The realtime-js / supabase-js harness, installed from its lockfile when `make test` has not done it."""
    installed = JS_DIR / "node_modules" / "@supabase"
    if not all((installed / package).is_dir() for package in ("realtime-js", "supabase-js")):
        npm = ["npm", "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run(npm, check=True, cwd=REPO_ROOT)
    return JS_DIR / "client.mjs"


# The shared server keeps the supabase profile's per-socket and per-channel limits (channels, presence window,
# payload) and lifts its per-project rates: those are averaged over a minute for the whole endpoint, so one
# test's burst would shut the channels of the tests after it. Rate cases start their own server
# (conformance/test_limits.py, preview_agent/tests/test_agent_limits.py).
SHARED_SERVER_RATES = {
    "REALTIME_LIMITS_PROFILE": "supabase",
    "REALTIME_MAX_EVENTS_PER_SECOND": "1000000",
    "REALTIME_MAX_JOINS_PER_SECOND": "1000000",
    "REALTIME_MAX_PRESENCE_EVENTS_PER_SECOND": "1000000",
}


@pytest.fixture(scope="session")
def realtime_server(django_db_setup: None) -> Iterator[RealtimeServer]:
    """A daphne process shared by the session (use unique topic names per test)."""
    with tempfile.TemporaryDirectory(prefix="velocity-rt-") as var_dir:
        server = RealtimeServer(Path(var_dir), **SHARED_SERVER_RATES).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def realtime_endpoint(realtime_server: RealtimeServer) -> tuple[str, Callable[[str], str]]:
    """`(realtime_http_base, project_key)` for end-to-end tests against the embedded endpoint.

    `project_key(project_id)` is a service-role key: the server process may not share the test database
    (SQLite), and these tests are about the protocol. Project access has its own tests with the keys the
    orchestrator really issues (`sessions/tests/test_project_channels.py`, the resilience attack suite).
    """
    return realtime_server.http_base, lambda project_id: service_token()


# --- in-process sockets through the real ASGI application -------------------------------------


class Socket:
    """A vsn 1.0.0 socket with push/receive helpers."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.refs = 0

    async def push(self, topic: str, event: str, payload: Any, join_ref: str | None = None) -> str:
        self.refs += 1
        frame = {"topic": topic, "event": event, "payload": payload, "ref": str(self.refs), "join_ref": join_ref}
        await self.communicator.send_to(text_data=json.dumps(frame))
        return str(self.refs)

    async def receive(self, timeout: float = 2) -> dict[str, Any]:
        return json.loads(await self.communicator.receive_from(timeout))

    async def receive_event(self, event: str, timeout: float = 2) -> dict[str, Any]:
        while True:
            frame = await self.receive(timeout)
            if frame["event"] == event:
                return frame

    async def join(self, topic: str, config: dict[str, Any] | None = None, **payload: Any) -> dict[str, Any]:
        await self.push(f"realtime:{topic}", "phx_join", {"config": config or {}, **payload})
        return await self.receive_event("phx_reply")


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    communicators: list[WebsocketCommunicator] = []

    async def open_socket(token: str, vsn: str = "1.0.0", headers: list[Any] | None = None) -> Socket | None:
        path = f"/realtime/v1/websocket?apikey={token}&vsn={vsn}"
        communicator = WebsocketCommunicator(realtime_application, path, headers=headers or [])
        communicators.append(communicator)
        connected, _ = await communicator.connect()
        return Socket(communicator) if connected else None

    yield open_socket
    for communicator in communicators:
        await communicator.disconnect()


def _tests_run_as_the_server_process() -> None:
    # The suite drives the endpoint in process (WebsocketCommunicator), so publications are delivered
    # here directly; tests of the HTTP relay switch this off explicitly.
    relay.mark_server_process()


_tests_run_as_the_server_process()
