"""The dashboard's browser harness: a real server (``velocity.run``: daphne, the task cluster and the local
provider) in a temporary var dir, an operator's Chromium page, and helpers. Each browser test module gets its
own server (``server`` is module-scoped), so a test that pauses or breaks a part of it harms no other module.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it); without it these tests skip.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import override_settings

from machines.providers import get_provider
from velocity.auth import issue_token
from velocity.testing import (
    REPO_ROOT,
    embedded_env,
    free_port,
    manage,
    supervised,
    wait_until,
)

SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", REPO_ROOT / "var" / "screenshots"))
PASSWORD = "browser-test-operator"
LIVE_TIMEOUT_MS = 30_000


@dataclass
class Server:
    url: str
    var_dir: Path

    def create_session(self, project_id: str, user_id: uuid.UUID | None = None) -> dict[str, Any]:
        token = issue_token(sub=user_id or uuid.uuid4(), role="authenticated")
        response = httpx.post(
            f"{self.url}/api/v1/sessions/",
            json={"project_id": project_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        return {**response.json(), "token": token}

    def wait_active(self, session: dict[str, Any], timeout: float = 60) -> None:
        headers = {"Authorization": f"Bearer {session['token']}"}

        def active() -> bool:
            current = httpx.get(f"{self.url}/api/v1/sessions/{session['id']}/", headers=headers, timeout=10).json()
            assert current["status"] in ("creating", "active"), current  # never failed nor ended on the way
            return bool(current["status"] == "active")

        wait_until(active, timeout=timeout, interval=0.2, what=f"session {session['id']} active")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("browser") / "var") as started:
        yield started


@contextlib.contextmanager
def running_server(var_dir: Path, **extra_env: str) -> Iterator[Server]:
    """A migrated, seeded server in ``var_dir`` (``extra_env`` added to its environment) until the block ends."""
    port = free_port()
    env = embedded_env(
        var_dir,
        PORT=str(port),
        HOST="127.0.0.1",
        VELOCITY_ADMIN_PASSWORD=PASSWORD,
        SUPABASE_JWT_SECRET=settings.SUPABASE_JWT_SECRET,  # so the tokens this process issues are accepted
        **extra_env,
    )
    manage(env, "migrate", "-v0")
    manage(env, "ensure_operator")
    manage(env, "shell", "-c", "from dashboard.tests.dashboard_setup import seed_history; seed_history()")
    try:
        with supervised(env) as url:
            yield Server(url, var_dir)
    finally:
        _destroy_local_machines(var_dir)


def _destroy_local_machines(var_dir: Path) -> None:
    with override_settings(VAR_DIR=var_dir, MACHINE_PROVIDER="local"):
        get_provider.cache_clear()
        provider = get_provider()
        for machine in provider.list():
            provider.destroy(machine.id)
    get_provider.cache_clear()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(LIVE_TIMEOUT_MS)
    yield page
    context.close()


def log_in(page: Any, next_path: str = "/dashboard/") -> None:
    page.goto(f"/admin/login/?next={next_path}")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{next_path}")


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
