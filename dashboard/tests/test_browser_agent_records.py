"""On call: the session page keeps its agent's log lines and file syncs across a reload, and shows file updates
a frozen agent never acknowledged. A real server, a real agent (the local provider's process, frozen with
SIGSTOP), the playground as the editor, and headless Chromium as the operator.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dashboard.tests.browser import Server, log_in, screenshot
from velocity.testing import REPO_ROOT, require_chromium, wait_until

pytestmark = pytest.mark.slow

require_chromium()

VITE_HEADING = "Hello from a Vite app on Velocity"
BOOT_TIMEOUT_MS = 120_000


def agent_pid(server: Server, session_id: str) -> int:
    """The preview agent's pid, from the local provider's machine directory of this session's machine."""
    for config in (server.var_dir / "machines").glob("*/config.json"):
        if session_id in config.read_text():
            state = json.loads((config.parent / "state.json").read_text())
            return int(state["agent_pid"])
    raise AssertionError(f"no local machine runs session {session_id}")


@contextmanager
def frozen(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def start_vite_session(page: Any) -> str:
    log_in(page, "/dashboard/playground/?sample=vite")
    page.get_by_role("button", name="Start session").click()
    page.get_by_text("Live: session").wait_for(timeout=BOOT_TIMEOUT_MS)
    page.frame_locator("#pg-preview").get_by_role("heading", name=VITE_HEADING).wait_for(timeout=BOOT_TIMEOUT_MS)
    return str(page.evaluate("document.body.dataset.sessionId"))


def edit(page: Any, old: str, new: str) -> None:
    editor = page.get_by_label("Content")
    editor.fill(editor.input_value().replace(old, new))


def reloaded_until(page: Any, selector: str, what: str) -> Any:
    """Reload until the server renders ``selector`` (records reach the database within a second)."""

    def shown() -> bool:
        page.reload(wait_until="domcontentloaded")
        return bool(page.locator(selector).count())

    wait_until(shown, timeout=15, interval=0.5, what=what)
    return page.locator(selector)


def keep_screenshot(path: Path) -> None:
    shutil.copyfile(path, REPO_ROOT / "docs" / "img" / path.name)


def test_a_reload_keeps_the_logs_and_syncs_and_shows_what_a_frozen_agent_left_unanswered(
    page: Any, server: Server
) -> None:
    session_id = start_vite_session(page)
    edit(page, VITE_HEADING, "Vite edited live")
    page.frame_locator("#pg-preview").get_by_role("heading", name="Vite edited live").wait_for()

    operator = page.context.new_page()
    operator.goto(f"/dashboard/sessions/{session_id}/")
    # Rows the server rendered from the kept records; the live feed's are marked data-live.
    stored_ack = reloaded_until(
        operator, "#sync-feed tr:not([data-live]):has(time):has-text('file:synced')", "the kept ack"
    )
    assert "src/main.js" in stored_ack.first.inner_text()
    assert operator.locator("#sync-feed tr:not([data-live]):has(time):has-text('file:update')").count() >= 1
    assert "vite" in operator.locator("#log-feed").inner_text().lower(), "the agent's log lines are kept"
    assert operator.locator('[data-stat="session.sync_backlog"]').count() == 0
    keep_screenshot(screenshot(operator, "session-agent-records"))

    with frozen(agent_pid(server, session_id)):
        edit(page, "Vite edited live", "Edited while frozen")
        warning = reloaded_until(operator, '[data-stat="session.sync_backlog"]', "the unacknowledged-updates warning")
        assert "1 file update unacknowledged for" in warning.inner_text()
        operator.wait_for_function("parseInt(document.querySelector('[data-age-seconds]').textContent, 10) >= 3")
        keep_screenshot(screenshot(operator, "session-unacknowledged-updates"))

    # Thawed, the agent answers the update it was holding and the warning goes away.
    page.frame_locator("#pg-preview").get_by_role("heading", name="Edited while frozen").wait_for()

    def cleared() -> bool:
        operator.reload(wait_until="domcontentloaded")
        return operator.locator('[data-stat="session.sync_backlog"]').count() == 0

    wait_until(cleared, timeout=15, interval=0.5, what="the warning cleared once the agent acknowledged")
