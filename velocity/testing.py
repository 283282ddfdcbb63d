"""Shared pytest fixtures and helpers (registered by the root conftest)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.server
import inspect
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import DatabaseError, connections
from django.test import Client, TransactionTestCase

from velocity.auth import issue_token

REPO_ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
FLUSH_ATTEMPTS = 4


# Supabase's auth helpers as policies use them: ``auth.uid()``/``auth.jwt()`` read the request's JWT claims
# (what PostgREST and Realtime set) the way Supabase's own functions do.
SUPABASE_AUTH_STUB = """
CREATE SCHEMA auth;
CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE
  AS $$ SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$;
CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE
  AS $$ SELECT nullif(auth.jwt() ->> 'sub', '')::uuid $$;
"""


# Supabase's API roles, as a Supabase database has them (cluster-wide: created once, never dropped).
SUPABASE_ROLES_SQL = """
DO $$ BEGIN
  CREATE ROLE authenticated NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;  -- created meanwhile by another run
END $$;
DO $$ BEGIN
  CREATE ROLE anon NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
DO $$ BEGIN
  IF NOT pg_has_role(current_user, 'authenticated', 'MEMBER') THEN
    EXECUTE format('GRANT authenticated TO %I', current_user);
  END IF;
END $$;
"""


def in_ci() -> bool:
    """CI sets ``CI`` (GitHub Actions and ``.ci/run`` alike)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def require(available: object, reason: str) -> None:
    """Skip the test when ``available`` is falsy, or fail it under CI, where every tool must be installed."""
    if available:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)  # also at a module's top level


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"
) -> T:
    """Call ``condition`` until it returns something truthy and return that; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {value!r})")
        time.sleep(interval)


async def async_wait_until(
    condition: Callable[[], T | None | Awaitable[T | None]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """``wait_until`` for async tests: ``condition`` may be a coroutine function; the loop keeps running."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)


def wait_for_http(url: str, *, timeout: float = 20.0, status: int = 200) -> httpx.Response:
    """Poll ``url`` until it answers ``status``."""

    def answered() -> httpx.Response | str:
        try:
            response = httpx.get(url, timeout=2)
        except httpx.HTTPError:
            return ""
        return response if response.status_code == status else ""

    return wait_until(answered, timeout=timeout, interval=0.1, what=f"{url} answering {status}")  # type: ignore[return-value]


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, *, timeout: float = 30.0) -> None:
    """Wait until something listens on the loopback ``port``; fail at once if ``process`` exited meanwhile."""

    def listening() -> bool:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with code {process.returncode}")
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, timeout=timeout, what=f"a listener on port {port}")


def embedded_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh embedded-mode process: no DATABASE_URL/REDIS_URL, its own var/."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({"VELOCITY_VAR_DIR": str(var_dir), "PYTHONPATH": str(REPO_ROOT), **extra})
    return env


def manage(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python manage.py ARGS`` in a subprocess with ``env``; with ``check``, a failure shows its stderr."""
    argv = [sys.executable, "manage.py", *args]
    result = subprocess.run(argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"manage.py {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
    return result


def login_cookie(*, is_staff: bool) -> bytes:
    """A ``Cookie`` header value of a freshly logged-in user (staff or not), for websocket tests."""
    user = get_user_model().objects.create_user(f"u-{uuid.uuid4().hex[:8]}", password="x", is_staff=is_staff)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def alogin_cookie(*, is_staff: bool) -> bytes:
    """``login_cookie`` from async tests."""
    return await database_sync_to_async(login_cookie)(is_staff=is_staff)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """On PostgreSQL, a test database of this run's own: two suites on one server must not drop each other's."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("postgresql") and not db.get("TEST", {}).get("NAME"):
        db.setdefault("TEST", {})["NAME"] = f"test_{db['NAME']}_{os.getpid()}"


@pytest.fixture
def user_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def user_token() -> Callable[..., str]:
    """Issues a user's access token (``sub`` a fresh user unless given), as the API and sockets accept it."""

    def make(sub: uuid.UUID | None = None, role: str = "authenticated", ttl: int = 3600) -> str:
        return issue_token(sub=sub or uuid.uuid4(), role=role, ttl=ttl)

    return make


@pytest.fixture
def staff_client(client: Client, django_user_model: Any) -> Client:
    """pytest-django's ``client`` logged in as a staff operator (not a superuser, unlike ``admin_client``)."""
    operator = django_user_model.objects.create_user("operator", password="pw-operator", is_staff=True)
    client.force_login(operator)
    client.operator = operator  # type: ignore[attr-defined]
    return client


@pytest.fixture
def tmp_var_dir(tmp_path: Path) -> Iterator[Path]:
    var = tmp_path / "var"
    var.mkdir()
    yield var


@pytest.fixture(autouse=True, scope="session")
def _close_database_connections_after_each_use() -> None:
    """Async tests use the database from worker threads; with CONN_MAX_AGE those connections
    outlive the tests and PostgreSQL refuses to drop the test database at the end."""
    for alias in connections:
        connections.settings[alias]["CONN_MAX_AGE"] = 0
    settings.WEB_THREAD_CONN_MAX_AGE = 0  # the in-process ASGI handler's request threads too (server processes keep)


@pytest.fixture(autouse=True, scope="session")
def _flush_survives_other_processes_writing() -> Iterator[None]:
    """A transactional test's teardown empties every table with one TRUNCATE, while the server processes some
    tests start (daphne, agents) may still be writing to the same test database: a trace batch landing at
    that moment takes its locks in the other order and PostgreSQL aborts one side as a deadlock. When it
    aborts the TRUNCATE, the test fails in teardown although it passed. Try the flush again: the other side
    has finished by then."""
    original = vars(TransactionTestCase)["_fixture_teardown"]  # private: django-stubs does not declare it

    def teardown_with_retries(self: TransactionTestCase) -> None:
        for attempt in range(FLUSH_ATTEMPTS):
            try:
                return original(self)
            except CommandError as error:
                if attempt == FLUSH_ATTEMPTS - 1 or not isinstance(error.__cause__, DatabaseError):
                    raise
                time.sleep(0.2 * (attempt + 1))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransactionTestCase, "_fixture_teardown", teardown_with_retries)
        yield


@pytest.fixture(autouse=True)
def _a_fresh_channel_layer_per_test() -> Iterator[None]:
    """Each async test runs on its own event loop, and a channels_redis layer that received on an
    earlier loop keeps locks bound to it; production processes have one loop, tests get one layer each."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


# --- browser tests: Debian's chromium (or $CHROMIUM) through Playwright, and static pages on another origin ---

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    require(CHROMIUM.exists(), f"no Chromium at {CHROMIUM}: install Debian's chromium package (.ci/run does)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the module's tests."""
    # Imported here: only the browser tests need Playwright, and it is slow to import for the others.
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """``directory`` served over HTTP on a free loopback port (another origin than the API's); yields its URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@contextlib.contextmanager
def supervised(env: dict[str, str], *roles: str) -> Iterator[str]:
    """``python -m velocity.run [roles]`` (what ``make up`` runs) with ``env`` until /health answers; yields its
    URL and stops it with Ctrl-C afterwards. ``env`` needs ``PORT`` and a migrated ``VELOCITY_VAR_DIR``."""
    url = f"http://127.0.0.1:{env['PORT']}"
    process = subprocess.Popen([sys.executable, "-m", "velocity.run", *roles], cwd=REPO_ROOT, env=env)
    try:
        wait_for_http(f"{url}/health", timeout=30)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


def cluster_beat(*, age: float = 0.0, status: str = "Idle", workers: int = 2, cluster_id: str = "test-cluster") -> Any:
    """A task cluster's heartbeat ``age`` seconds old, as the cluster writes it (``velocity.task_queue``):
    a fresh one stands for a running cluster in tests that have none, a stale one for a stopped one."""
    from django.utils import timezone

    from velocity.models import WorkerHeartbeat

    at = timezone.now() - timedelta(seconds=age)
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        cluster_id=cluster_id,
        defaults={"host": "test", "pid": 1, "workers": workers, "status": status, "started_at": at, "beat_at": at},
    )
    return beat


@pytest.fixture
def isolated_task_queue(db: Any) -> Iterator[Any]:
    """The task queue ``velocity.task_queue`` reads, on a list of this test's own: with the Redis broker the
    queue outlives the test's transaction (and is shared with anything else using that Redis)."""
    from unittest import mock

    from django_q.brokers import get_broker
    from django_q.brokers.orm import ORM

    broker = get_broker(list_key=f"velocity-test-{uuid.uuid4().hex}")
    with mock.patch("velocity.task_queue.get_broker", return_value=broker):
        yield broker
    if not isinstance(broker, ORM):  # the ORM's rows go with the test's transaction
        broker.delete_queue()
