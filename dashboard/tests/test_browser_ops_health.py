"""On call with a real server in Chromium: a stopped task worker shows on the overview and in ``/health``;
an orphan machine is flagged on the overview with what reconciliation did to it, and the session's page says so.
The harness (server, page, log_in, screenshot) is ``dashboard/tests/browser.py``; this module gets its own server,
since pausing its worker would stall any other test's sessions.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard.tests.browser import Server, log_in, screenshot
from velocity.testing import embedded_env, manage, require_chromium, wait_until

pytestmark = pytest.mark.slow

require_chromium()

HEARTBEAT_STALE_SECONDS = 15  # WORKER_STALE_SECONDS' default


def qcluster_group(var_dir: Path) -> int:
    """The process group of the server's task cluster (``velocity.run`` starts it in a group of its own)."""
    marker = f"VELOCITY_VAR_DIR={var_dir}".encode()
    for entry in Path("/proc").iterdir():
        try:
            cluster = entry.name.isdigit() and b"qcluster" in (entry / "cmdline").read_bytes()
            if cluster and marker in (entry / "environ").read_bytes().split(b"\0"):
                return os.getpgid(int(entry.name))
        except OSError:
            continue
    raise AssertionError(f"no task cluster runs for {var_dir}")


@contextmanager
def paused(pgid: int) -> Iterator[None]:
    """SIGSTOP every process of the group (the sentinel, its workers, pusher and monitor), SIGCONT after."""
    os.killpg(pgid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(pgid, signal.SIGCONT)


def health(server: Server) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{server.url}/health", timeout=10)
    return response.status_code, response.json()


def test_a_stopped_worker_shows_on_the_overview_and_in_health(page: Any, server: Server) -> None:
    wait_until(lambda: health(server)[1]["checks"]["worker"]["status"] == "ok", timeout=30, what="a first heartbeat")
    log_in(page)
    page.evaluate("window.__notReloaded = true")
    page.locator('[data-stat="worker.state"]', has_text="Running").wait_for()
    with paused(qcluster_group(server.var_dir)):
        # within the heartbeat threshold, plus slack for a loaded machine
        wait_until(
            lambda: health(server)[1]["status"] == "degraded",
            timeout=HEARTBEAT_STALE_SECONDS + 10,
            interval=0.5,
            what="/health degraded",
        )
        status, body = health(server)
        assert status == 200  # the web process serves: Fly must not restart it for the worker's sake
        assert body["failing"] == ["worker"] and body["checks"]["worker"]["status"] == "down"
        # no reload: the health region refreshes on its own (a stopped worker sends no event to react to)
        alert = page.locator('[data-stat="worker.state"]', has_text="Stopped: no heartbeat for")
        alert.wait_for()
        assert alert.get_attribute("role") == "alert"
        screenshot(page, "overview-worker-stopped")
    wait_until(lambda: health(server)[1]["status"] == "ok", timeout=30, interval=0.5, what="/health ok again")
    page.locator('[data-stat="worker.state"]', has_text="Running").wait_for()
    assert page.evaluate("window.__notReloaded") is True


def test_an_orphan_is_flagged_with_what_was_done_and_linked_to_its_session(page: Any, server: Server) -> None:
    session = server.create_session("browser-orphan")
    server.wait_active(session)
    env = embedded_env(server.var_dir)
    machine_dir = backdate_machine_of(server.var_dir, session["id"], minutes=5)
    end_behind_the_services_back(env, session["id"], minutes=5)
    manage(env, "sweep", "--only", "reconcile_machines")
    assert not machine_dir.exists()  # destroyed at the provider
    log_in(page)
    finding = page.locator("li.finding.warning", has_text=f"Destroyed orphan {machine_dir.name}")
    finding.wait_for()
    assert "running 5 min" in finding.inner_text() and "its machine had already ended here" in finding.inner_text()
    finding.scroll_into_view_if_needed()
    screenshot(page, "overview-orphan-destroyed")
    finding.get_by_role("link", name=f"session {session['id'][:8]}").click()
    page.wait_for_url(f"**/dashboard/sessions/{session['id']}/")
    event = page.locator(".timeline .reconcile", has_text=f"Destroyed orphan {machine_dir.name}")
    assert event.is_visible()
    assert page.get_by_role("heading", name="Reconciliation").is_visible()
    screenshot(page, "session-orphan-destroyed")


def backdate_machine_of(var_dir: Path, session_id: str, *, minutes: int) -> Path:
    """The local machine of ``session_id``, made to look ``minutes`` old (past reconciliation's grace)."""
    for config_path in (var_dir / "machines").glob("*/config.json"):
        config = json.loads(config_path.read_text())
        if config["metadata"].get("velocity_session_id") == session_id:
            config["created_at"] -= minutes * 60
            config_path.write_text(json.dumps(config))
            return config_path.parent
    raise AssertionError(f"no local machine runs session {session_id}")


def end_behind_the_services_back(env: dict[str, str], session_id: str, *, minutes: int) -> None:
    """What a direct database edit does (the admin's old status field): the rows say ended and destroyed,
    ``minutes`` ago, while the machine keeps running at the provider."""
    code = (
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from machines.models import Machine\n"
        "from sessions.models import PreviewSession\n"
        f"ago = timezone.now() - timedelta(minutes={minutes})\n"
        f"session = PreviewSession.objects.get(id='{session_id}')\n"
        "Machine.objects.filter(id=session.machine_id).update(state='destroyed', destroyed_at=ago, updated_at=ago)\n"
        "PreviewSession.objects.filter(id=session.id).update(status='ended', ended_at=ago, end_reason='operator')\n"
    )
    manage(env, "shell", "-c", code)
