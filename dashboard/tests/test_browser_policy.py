"""The policy dry-run in a real Chromium against a real server: edits broadcast through the realtime endpoint
become a live session's activity minutes, the operator replays a 15-minute idle timeout on 30 days of history,
reads the answer and its chart, and applies it (confirmed, audited); the service-role API sees the new rule.
The harness (server, page, log_in, screenshot) is ``dashboard/tests/browser.py``."""

from __future__ import annotations

import shutil
from typing import Any

import httpx
import pytest

from dashboard.tests.browser import Server, log_in, screenshot
from velocity.auth import issue_token
from velocity.testing import REPO_ROOT, embedded_env, manage, require_chromium, wait_until

pytestmark = pytest.mark.slow

require_chromium()

DOCS_IMG = REPO_ROOT / "docs" / "img"


def in_server(server: Server, code: str) -> str:
    """Run ``code`` in a ``manage.py shell`` on the server's own database; the last line it prints."""
    return manage(embedded_env(server.var_dir), "shell", "-c", code).stdout.strip().splitlines()[-1]


def edits_recorded(server: Server, session_id: str) -> int:
    code = (
        "from django.db.models import Sum; from sessions.models import SessionActivity; "
        f"print(SessionActivity.objects.filter(session_id='{session_id}').aggregate(n=Sum('edits'))['n'] or 0)"
    )
    return int(in_server(server, code))


def broadcast_edit(server: Server, session: dict[str, Any], project: str) -> None:
    message = {
        "topic": f"project:{project}",
        "event": "file:update",
        "payload": {"path": "src/App.tsx", "content": "export default 1\n", "encoding": "utf8", "version": 2},
        "private": True,
    }
    headers = {"apikey": session["token"], "Authorization": f"Bearer {session['token']}"}
    response = httpx.post(f"{server.url}/realtime/v1/api/broadcast", json={"messages": [message]}, headers=headers)
    assert response.status_code == 202, response.text


def test_an_operator_replays_a_tighter_idle_timeout_and_applies_it(page: Any, server: Server) -> None:
    assert int(in_server(server, "from dashboard.tests.dashboard_setup import *; print(seed_policy_activity())")) > 0
    session = server.create_session("policy-live")
    server.wait_active(session)
    broadcast_edit(server, session, "policy-live")
    wait_until(lambda: edits_recorded(server, session["id"]) >= 1, timeout=60, interval=1, what="the edit recorded")

    log_in(page, "/dashboard/policy/")
    page.get_by_label("Idle timeout (minutes)").fill("15")
    page.get_by_role("button", name="Run the dry-run").click()
    answer = page.locator("#dry-run-answer")
    answer.wait_for()
    assert "would have ended earlier" in answer.get_by_role("heading", level=2).inner_text()
    assert int(page.locator('[data-stat="dry.users"]').inner_text()) >= 1
    assert int(page.locator('[data-stat="dry.wrong"]').inner_text()) >= 1  # the seeded 20-minute pauses
    assert page.locator("svg.chart rect.bar").count() >= 30
    shutil.copyfile(screenshot(page, "policy-dry-run"), DOCS_IMG / "policy-dry-run.png")

    page.get_by_role("button", name="Apply this policy…").click()
    page.get_by_label("Reason").fill("previews idle for 15 minutes are abandoned")
    page.get_by_role("button", name="Apply the policy").click()
    page.get_by_text("Policy applied: idle timeout 15 min").wait_for()
    assert page.locator('[data-stat="live.idle"]').inner_text() == "15 min"
    service = {"Authorization": f"Bearer {issue_token(sub=None, role='service_role')}"}
    live = httpx.get(f"{server.url}/api/v1/policy/", headers=service, timeout=10).json()
    assert live["idle_timeout_minutes"] == 15
