"""The web server's handler: a sync view's whole request runs on one of a few long-lived request threads, which
keep their database connections; async views keep Django's path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from machines.models import Machine, new_machine_token
from realtime_bridge.testing import service_token
from velocity.asgi_handler import serves_sync
from velocity.auth import issue_token
from velocity.testing import REPO_ROOT, embedded_env, free_port, require, wait_for_http

THREADS = 3


def test_reads_and_agent_reports_take_one_hop_and_the_rest_keep_djangos_path() -> None:
    assert serves_sync("/api/v1/sessions/", "GET")
    assert serves_sync("/dashboard/", "GET")
    assert serves_sync("/api/v1/agent/events/", "POST")  # one_hop_methods
    assert serves_sync("/no/such/path/", "GET")  # the 404 comes from the sync chain
    assert not serves_sync("/api/v1/sessions/", "POST")  # a create may wait for its warm agent
    assert not serves_sync("/api/v1/agent/assignment/", "GET")  # held open: held_methods
    assert not serves_sync("/health", "GET")  # async views stay on the event loop
    assert not serves_sync("/realtime/v1/api/broadcast", "POST")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_held_assignment_requests_do_not_take_the_request_threads(tmp_path: Path) -> None:
    """More warm agents waiting for their assignment than there are request threads: reads still answer."""
    require(connection.vendor == "postgresql", "runs the web on the test database")
    base, web = _start_web(tmp_path)
    try:
        tokens = [_warm_machine_token() for _ in range(THREADS + 2)]
        with ThreadPoolExecutor(len(tokens)) as held:
            waits = [held.submit(_wait_for_assignment, base, token) for token in tokens]
            time.sleep(1.0)  # every assignment request is held by now
            _list_many(base, 10)  # would hang with the request threads all held
            assert not any(wait.done() for wait in waits)
            assert {wait.result(timeout=30) for wait in waits} == {204}
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(timeout=60)


def _backends(database: str) -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND application_name = 'velocity-web-test'",
            [database],
        )
        return {row[0] for row in cursor.fetchall()}


def _start_web(tmp_path: Path, **extra: str) -> tuple[str, subprocess.Popen[bytes]]:
    """``velocity.run web`` on the test database, with THREADS request threads, its connections named."""
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
        **extra,
    )
    argv = [sys.executable, "-m", "velocity.run", "web"]
    web = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/health", timeout=60)
    return base, web


def _warm_machine_token() -> str:
    token, token_hash = new_machine_token()
    Machine.objects.create(provider="local", memory_mb=512, is_warm=True, token_hash=token_hash)
    return token


def _wait_for_assignment(base: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(f"{base}/api/v1/agent/assignment/?wait=3", headers=headers, timeout=30).status_code


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
    base, web = _start_web(tmp_path)
    try:
        _list_many(base, 100)
        first = _backends(database)
        _list_many(base, 100)
        second = _backends(database)
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(timeout=60)
    assert 1 <= len(first) <= THREADS, first
    assert second == first  # the same backends served the second hundred


def _backends_seen_while(database: str, work: Callable[[], None]) -> set[int]:
    """Every backend of the web seen in pg_stat_activity, sampled every few milliseconds while ``work`` runs."""
    seen: set[int] = set()
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{database}", autocommit=True) as db:
            while not done.is_set():
                rows = db.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'velocity-web-test'",
                    [database],
                )
                seen.update(row[0] for row in rows)
                time.sleep(0.003)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        work()
    finally:
        done.set()
        sampler.join()
    return seen


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_requests_on_djangos_path_borrow_pooled_connections(tmp_path: Path) -> None:
    """Creates run on Django's thread per request, which used to open a PostgreSQL backend for each request and
    close it after; with the web's pool (WEB_DATABASE_POOL, set by velocity.run for its daphnes) 20 creates borrow
    the same few connections."""
    require(connection.vendor == "postgresql", "counts PostgreSQL backends")
    database = connection.settings_dict["NAME"]
    base, web = _start_web(tmp_path)
    try:

        def creates() -> None:
            for number in range(20):
                headers = {"Authorization": f"Bearer {issue_token(sub=uuid.uuid4())}"}
                response = httpx.post(
                    f"{base}/api/v1/sessions/", json={"project_id": f"pool-{number}"}, headers=headers
                )
                assert response.status_code == 201, response.text

        seen = _backends_seen_while(database, creates)
    finally:
        web.send_signal(signal.SIGINT)
        web.wait(timeout=60)
    assert 1 <= len(seen) <= THREADS + 2, seen
