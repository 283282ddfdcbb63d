"""Budgets that act, end to end under ``velocity.run``: a real session on a real local machine, the operator's
session page open in Chromium, the user's budget lowered through the API, the ``enforce_budgets`` job run by
``manage.py sweep`` in its own process, and the open page turning to "ended: monthly budget spent" without a
reload (the ``session.budget`` and ``session.status`` events, relayed to the server)."""

from __future__ import annotations

import shutil
import uuid
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from django.conf import settings

from dashboard.tests.browser import Server, log_in, screenshot
from velocity.auth import issue_token
from velocity.testing import REPO_ROOT, embedded_env, manage, require_chromium

pytestmark = pytest.mark.slow

require_chromium()


def set_budget(server: Server, user: uuid.UUID, usd: str) -> None:
    token = issue_token(sub=uuid.uuid4(), role="service_role")
    response = httpx.put(
        f"{server.url}/api/v1/quotas/{user}/",
        json={"monthly_budget_usd": usd},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text


def sweep(server: Server, name: str) -> str:
    """One scheduled job in a process of its own, publishing through the server's relay as the cluster does."""
    port = str(urlparse(server.url).port)
    env = embedded_env(server.var_dir, PORT=port, SUPABASE_JWT_SECRET=settings.SUPABASE_JWT_SECRET)
    return manage(env, "sweep", "--only", name).stdout


def test_the_budget_check_ends_the_users_session_and_the_open_page_says_so(page: Any, server: Server) -> None:
    user = uuid.uuid4()
    session = server.create_session("browser-budget", user_id=user)
    server.wait_active(session)
    log_in(page, f"/dashboard/sessions/{session['id']}/")
    line = page.locator("[data-budget]")
    assert "of $5.00 this month" in line.inner_text() and "the cap in" in line.inner_text()
    page.evaluate("window.__notReloaded = true")

    set_budget(server, user, "0.00")
    assert "1 session(s) ended" in sweep(server, "enforce_budgets")
    page.locator("[data-budget]", has_text="ended: monthly budget spent").wait_for()
    page.locator('[data-stat="session.status"]', has_text="ended").wait_for()
    assert page.evaluate("window.__notReloaded") is True
    assert "Monthly budget spent" in page.locator("[data-region=session_state]").inner_text()
    shutil.copyfile(screenshot(page, "session-budget-ended"), REPO_ROOT / "docs" / "img" / "session-budget-ended.png")
