"""On call: a preview hangs. With its agent really frozen (SIGSTOP), the operator finds the session by the
8-character id prefix the user quotes and sees it flagged in the list; its page says why within seconds, shows
the machine's restart and turns healthy again once the restarted agent reports, without a reload. The server
is the real one (``make up``'s roles, the agent watch in the worker)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard.tests.browser import Server, log_in, screenshot
from velocity.testing import require_chromium, wait_until

pytestmark = pytest.mark.slow

require_chromium()

# Generous: the watch's own clocks are the defaults (a 2 s probe, 15 s without heartbeats, then a restart).
SEEN_MS = 30_000
RESTARTED_MS = 90_000


def agent_pid(server: Server, machine_id: str) -> int | None:
    """The running agent's pid, from its local machine's state (the provider names machines by their id)."""
    state_file = server.var_dir / "machines" / f"velocity-{uuid.UUID(machine_id).hex}" / "state.json"
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(Path(state_file).read_text())
        return int(state["agent_pid"]) if state.get("state") == "started" else None
    return None


def machine_of(server: Server, session: dict[str, Any]) -> str:
    headers = {"Authorization": f"Bearer {session['token']}"}
    return str(
        httpx.get(f"{server.url}/api/v1/sessions/{session['id']}/", headers=headers, timeout=10).json()["machine_id"]
    )


def health_of(server: Server, session: dict[str, Any]) -> str:
    headers = {"Authorization": f"Bearer {session['token']}"}
    return str(
        httpx.get(f"{server.url}/api/v1/sessions/{session['id']}/", headers=headers, timeout=10).json()["health"]
    )


def test_a_frozen_agent_is_flagged_within_seconds_and_its_machine_is_restarted(page: Any, server: Server) -> None:
    session = server.create_session("browser-frozen-agent")
    server.wait_active(session)
    machine_id = machine_of(server, session)
    wait_until(lambda: health_of(server, session) == "ok", timeout=SEEN_MS / 1000, what="the watch sees it healthy")
    frozen = wait_until(lambda: agent_pid(server, machine_id), what="the agent's pid")
    os.kill(frozen, signal.SIGSTOP)
    try:
        # The user reports "my preview hangs" quoting the first 8 characters of the session id: the operator
        # types them into the header's search box, sees the row flagged, and opens it.
        log_in(page)
        search = page.get_by_role("searchbox", name="Find a session: id prefix, machine id, project")
        search.fill(session["id"][:8])
        search.press("Enter")
        row = page.locator(f'tr[data-session="{session["id"]}"]')
        row.locator(".badge.degraded").wait_for(timeout=SEEN_MS)  # the list's live region follows the watch
        screenshot(page, "search-degraded-session")
        row.get_by_role("link").first.click()
        page.wait_for_url(f"**/dashboard/sessions/{session['id']}/")
        page.evaluate("window.__notReloaded = true")
        card = page.locator("section[aria-labelledby=h-agent]")
        page.locator('section[data-health="degraded"]').wait_for(timeout=SEEN_MS)
        reason = card.get_by_role("status").inner_text()
        assert "/health did not answer" in reason or "no heartbeat" in reason
        screenshot(page, "session-agent-degraded")

        # The restart is counted on the card (the "restarting the machine" reason lasts only while the agent
        # boots, a poll interval's worth when the socket is down, so the count is what is waited for).
        restarts = card.locator("dd", has_text="(last at")
        restarts.wait_for(timeout=RESTARTED_MS)
        assert restarts.inner_text().startswith("1 ")
        page.locator('section[data-health="ok"]').wait_for(timeout=RESTARTED_MS)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(frozen, signal.SIGCONT)  # if the restart never came, let teardown end it
    assert agent_pid(server, machine_id) not in (None, frozen)
    assert page.locator('[data-stat="session.status"]').inner_text() == "active"
    assert page.evaluate("window.__notReloaded") is True
    page.get_by_role("heading", name="Machine events").scroll_into_view_if_needed()
    screenshot(page, "session-agent-restarted")
