"""The dashboard in a real headless Chromium against a real server (``velocity.run``: daphne, the task
cluster and the local provider), the way an operator uses it. Each test saves a screenshot.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it); without it these tests skip.
"""

from __future__ import annotations

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
    require_chromium,
    supervised,
    wait_until,
)

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", REPO_ROOT / "var" / "screenshots"))
PASSWORD = "browser-test-operator"
LIVE_TIMEOUT_MS = 30_000

require_chromium()


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
    var_dir = tmp_path_factory.mktemp("browser") / "var"
    port = free_port()
    env = embedded_env(
        var_dir,
        PORT=str(port),
        HOST="127.0.0.1",
        VELOCITY_ADMIN_PASSWORD=PASSWORD,
        SUPABASE_JWT_SECRET=settings.SUPABASE_JWT_SECRET,  # so the tokens this process issues are accepted
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


def test_an_operator_logs_in_and_sees_the_overview(page: Any) -> None:
    log_in(page)
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert page.get_by_role("heading", name="Reconciliation drift").is_visible()
    assert screenshot(page, "overview").stat().st_size > 0


def test_a_session_created_through_the_api_appears_on_the_overview_without_reloading(page: Any, server: Server) -> None:
    log_in(page)
    page.evaluate("window.__notReloaded = true")
    session = server.create_session("browser-overview")
    row = page.locator(f'tr[data-session="{session["id"]}"]')
    row.wait_for()
    row.locator(".badge", has_text="active").wait_for()  # and it follows the session's status changes
    assert page.evaluate("window.__notReloaded") is True
    screenshot(page, "overview-live-session")


def test_the_session_page_shows_the_waterfall_once_the_session_is_active(page: Any, server: Server) -> None:
    session = server.create_session("browser-session-page")
    log_in(page, f"/dashboard/sessions/{session['id']}/")
    page.locator('[data-stat="session.status"]', has_text="active").wait_for()
    assert page.get_by_role("heading", name="Time to preview").is_visible()
    screenshot(page, "session")


def test_killing_a_machine_from_the_machines_page_removes_it_from_the_list(page: Any, server: Server) -> None:
    session = server.create_session("browser-kill")
    server.wait_active(session)  # killing mid-provisioning fails the session instead: a different story
    log_in(page, "/dashboard/machines/")
    row = page.locator("tr[data-machine]", has_text="browser-kill")
    row.wait_for()
    machine_id = row.get_attribute("data-machine")
    row.get_by_role("link", name=f"Kill machine {machine_id}").click()
    page.get_by_role("button", name="Kill the machine").click()
    page.wait_for_url("**/dashboard/machines/")
    page.locator(f'tr[data-machine="{machine_id}"]').wait_for(state="detached")
    screenshot(page, "machines-after-kill")
    page.goto(f"/dashboard/sessions/{session['id']}/")
    assert page.locator('[data-stat="session.status"]').inner_text() == "ended"


def test_the_costs_page_charts_thirty_days_and_exports_csv(page: Any) -> None:
    log_in(page, "/dashboard/costs/")
    assert page.locator("svg.chart rect.bar").count() == 30
    heights = page.locator("svg.chart rect.bar").evaluate_all("bars => bars.map(b => Number(b.getAttribute('height')))")
    assert sum(1 for height in heights if height > 0) >= 29  # the seeded history: every past day cost something
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    assert download.value.suggested_filename.startswith("velocity-costs-")
    screenshot(page, "costs")


def test_typing_in_the_playground_changes_the_preview(page: Any) -> None:
    log_in(page, "/dashboard/playground/")
    page.get_by_role("button", name="Start session").click()
    page.get_by_text("Live: session").wait_for(timeout=90_000)
    preview = page.frame_locator("#pg-preview")
    preview.get_by_role("heading", name="Hello from Velocity").wait_for()
    watcher = page.context.new_page()  # the session's page follows the edits live
    watcher.goto(f"/dashboard/sessions/{page.evaluate('document.body.dataset.sessionId')}/")
    watcher.locator("#live-status[data-state=live]").wait_for()
    editor = page.get_by_label("Content")
    editor.fill(editor.input_value().replace("Hello from Velocity", "Edited in the playground"))
    preview.get_by_role("heading", name="Edited in the playground").wait_for()
    assert page.locator("#pg-acks tr").count() >= 2
    screenshot(page, "playground")
    watcher.locator("#sync-feed tr", has_text="file:synced").first.wait_for()
    assert watcher.locator("#sync-feed tr", has_text="file:update").first.inner_text().count("index.html") == 1
    screenshot(watcher, "session-file-syncs")


def test_the_vite_sample_hot_reloads_in_the_playground(page: Any) -> None:
    log_in(page, "/dashboard/playground/?sample=vite")
    page.get_by_role("button", name="Start session").click()
    page.get_by_text("Live: session").wait_for(timeout=120_000)
    preview = page.frame_locator("#pg-preview")
    preview.get_by_role("heading", name="Hello from a Vite app on Velocity").wait_for(timeout=120_000)
    editor = page.get_by_label("Content")
    editor.fill(editor.input_value().replace("Hello from a Vite app on Velocity", "Vite edited live"))
    preview.get_by_role("heading", name="Vite edited live").wait_for()
    screenshot(page, "playground-vite")
