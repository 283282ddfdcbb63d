"""The dashboard in a real headless Chromium against a real server, the way an operator uses it. Each test
saves a screenshot. The harness (server, page, log_in, screenshot) is ``dashboard/tests/browser.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.tests.browser import Server, log_in, screenshot
from velocity.testing import require_chromium

pytestmark = pytest.mark.slow

require_chromium()


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
