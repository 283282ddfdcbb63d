"""The web server's handler: a sync view's whole request runs on one of a few long-lived request threads, which
keep their database connections; async views keep Django's path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection

from realtime_bridge.testing import service_token
from velocity.asgi_handler import serves_sync
from velocity.testing import REPO_ROOT, embedded_env, free_port, require, wait_for_http

THREADS = 3


def test_rest_and_dashboard_views_are_served_in_one_hop_and_async_views_on_the_event_loop() -> None:
    assert serves_sync("/api/v1/sessions/")
    assert serves_sync("/dashboard/")
    assert serves_sync("/no/such/path/")  # the 404 comes from the sync chain
    assert not serves_sync("/health")
    assert not serves_sync("/realtime/v1/api/broadcast")


def _backends(database: str) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND application_name = 'velocity-web-test'",
            [database],
        )
        return {row[0] for row in cursor.fetchall()}


def _list_many(base: str, count: int) -> None:
    headers = {"Authorization": f"Bearer {service_token()}"}
    with httpx.Client(headers=headers, timeout=30) as client, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: client.get(f"{base}/api/v1/sessions/").status_code, range(count)))
    assert set(statuses) == {200}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_request_threads_keep_a_bounded_set_of_database_connections(tmp_path: Path) -> None:
    """Before, each request opened a PostgreSQL connection and closed it (a new backend process per request);
    now 100 concurrent requests use at most WEB_THREADS connections, and the next 100 reuse the same ones."""
    require(connection.vendor == "postgresql", "counts PostgreSQL backends")
    database = connection.settings_dict["NAME"]
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}?application_name=velocity-web-test"
    port = free_port()
    env = embedded_env(
        tmp_path,
        DATABASE_URL=url,
        PORT=str(port),
        HOST="127.0.0.1",
        WEB_THREADS=str(THREADS),
        SUPABASE_JWT_SECRET=settings.SUPABASE_JWT_SECRET,
    )
    argv = [sys.executable, "-m", "velocity.run", "web"]
    web = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", timeout=60)
        _list_many(base, 100)
        first = _backends(database)
        _list_many(base, 100)
        second = _backends(database)
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(timeout=60)
    assert 1 <= len(first) <= THREADS, first
    assert second == first  # the same backends served the second hundred
