"""Shared pytest fixtures and helpers (registered by the root conftest)."""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from velocity.auth import issue_token

REPO_ROOT = Path(__file__).resolve().parent.parent
FLY_PREVIEW_SUFFIX = "example-previews.dev"  # the `fly` fixture's preview domain, apart from the orchestrator's


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, *, timeout: float = 20.0, status: int = 200) -> httpx.Response:
    """Poll ``url`` until it answers ``status``; raise with the last error when it never does."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == status:
                return response
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last!r})")


def embedded_env(var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh embedded-mode process: no DATABASE_URL/REDIS_URL, its own var/."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update({"VELOCITY_VAR_DIR": str(var_dir), "PYTHONPATH": str(REPO_ROOT), **extra})
    return env


def python_executable() -> str:
    return sys.executable


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
def make_token() -> Callable[..., str]:
    def make(sub: uuid.UUID | None = None, role: str = "authenticated", ttl: int = 3600) -> str:
        return issue_token(sub=sub or uuid.uuid4(), role=role, ttl=ttl)

    return make


@pytest.fixture
def fly() -> Iterator[Any]:
    """The Fly provider configured against the fake Fly API (``machines/tests/fly_fake.py``, a real
    loopback HTTP server), so provisioning makes real Fly HTTP requests. Previews get their own hosts under
    ``FLY_PREVIEW_SUFFIX``, as every Fly deployment must (velocity.E009)."""
    from django.conf import settings
    from django.test import override_settings

    from machines.providers import get_provider
    from machines.tests.fly_fake import FakeFly, running

    fake_token = "fo1_test"  # noqa: S105  (the fake accepts any token)
    with (
        running(FakeFly()) as fake,
        override_settings(
            MACHINE_PROVIDER="fly",
            FLY_API_TOKEN=fake_token,
            FLY_APP_NAME="previews",
            FLY_API_BASE_URL=fake.base_url,
            PREVIEW_HOST_SUFFIX=FLY_PREVIEW_SUFFIX,
            ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, f".{FLY_PREVIEW_SUFFIX}"],
        ),
    ):
        get_provider.cache_clear()
        yield fake
    get_provider.cache_clear()


@pytest.fixture
def tmp_var_dir(tmp_path: Path) -> Iterator[Path]:
    var = tmp_path / "var"
    var.mkdir()
    yield var


def _tests_run_as_the_server_process() -> None:
    # The suite drives the ASGI app in process (WebsocketCommunicator), so publications are delivered
    # here directly; tests of the HTTP relay switch this off explicitly.
    from realtime_bridge import relay

    relay.mark_server_process()


_tests_run_as_the_server_process()
