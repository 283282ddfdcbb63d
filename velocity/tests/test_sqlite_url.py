"""A DATABASE_URL pointing at SQLite runs with the same options as the default SQLite database."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from realtime_bridge.testing import RealtimeServer
from velocity.auth import issue_token
from velocity.testing import REPO_ROOT, embedded_env, manage

PROBE = "import json, django; django.setup(); from django.conf import settings; print(json.dumps(settings.DATABASES))"


def run(env: dict[str, str], *argv: str) -> str:
    result = subprocess.run(
        [sys.executable, *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout


def test_a_sqlite_database_url_gets_immediate_transactions_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env = embedded_env(tmp_path, DJANGO_SETTINGS_MODULE="velocity.settings", DATABASE_URL=url)
    default = json.loads(run(env, "-c", PROBE))["default"]
    assert default["NAME"] == str(tmp_path / "db.sqlite3")
    assert default["OPTIONS"] == {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }


@pytest.fixture
def sqlite_url_server(tmp_path: Path) -> Iterator[RealtimeServer]:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    manage(embedded_env(tmp_path, DATABASE_URL=url), "migrate", "-v", "0")
    server = RealtimeServer(tmp_path, DATABASE_URL=url).start()
    yield server
    server.stop()


@pytest.mark.slow
def test_concurrent_creates_against_a_sqlite_database_url_never_answer_500(sqlite_url_server: RealtimeServer) -> None:
    url = f"http://127.0.0.1:{sqlite_url_server.port}/api/v1/sessions/"

    def create(n: int) -> int:
        token = issue_token(sub=uuid.uuid4())
        body = {"project_id": f"p{n}"}
        return httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(create, range(48)))
    assert set(statuses) == {201}
