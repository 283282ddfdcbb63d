"""Pytest fixtures for a real realtime server: daphne serving `velocity.asgi:application`.

Registered by the root conftest (`pytest_plugins`). `realtime_endpoint` yields
`(realtime_http_base, make_token)`: the base is `http://127.0.0.1:PORT/realtime/v1` and
`make_token(project_id)` mints a preview agent's token scoped to that project (what the
orchestrator gives a machine). The server process sees the test database on PostgreSQL
(commit rows with `django_db(transaction=True)` tests); on SQLite it runs on its own empty
file, which is enough for agent and service-role tokens (they need no row).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from velocity.auth import issue_token

REPO_ROOT = Path(__file__).resolve().parent.parent
JS_DIR = REPO_ROOT / "realtime_bridge" / "tests" / "js"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daphne exited with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"daphne did not listen on {port} within {timeout}s")


def agent_token(project_id: str, *, ttl: int = 3600) -> str:
    """A preview agent's token: `sub` is the machine, scoped to one project."""
    machine = uuid.uuid4()
    extra = {"velocity_project": str(project_id), "velocity_machine": str(machine)}
    return issue_token(sub=machine, role="authenticated", ttl=ttl, extra=extra)


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
        self.port = _free_port()
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
        self.process = subprocess.Popen(argv, cwd=REPO_ROOT, env=self.env)  # noqa: S603  (argv is ours)
        _wait_for_port(self.port, self.process)
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
    """The realtime-js harness, installed from its lockfile when `make test` has not done it."""
    if not (JS_DIR / "node_modules" / "@supabase" / "realtime-js").is_dir():
        npm = ["npm", "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund", "--loglevel=error"]
        subprocess.run(npm, check=True, cwd=REPO_ROOT)  # noqa: S603  (argv is ours)
    return JS_DIR / "client.mjs"


@pytest.fixture(scope="session")
def realtime_server(django_db_setup: None) -> Iterator[RealtimeServer]:
    """A daphne process shared by the session (use unique topic names per test)."""
    with tempfile.TemporaryDirectory(prefix="velocity-rt-") as var_dir:
        server = RealtimeServer(Path(var_dir)).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def realtime_endpoint(realtime_server: RealtimeServer) -> tuple[str, Callable[[str], str]]:
    """`(realtime_http_base, make_token)` for end-to-end tests against the embedded endpoint."""
    return realtime_server.http_base, agent_token
