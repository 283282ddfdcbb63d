"""On call, acting on a user in a real Chromium against a real server: stop a user's spike in three clicks,
find a user's session by the id prefix or the provider machine id they quote, read a quota change as a diff.
The harness (server, page, log_in, screenshot) is ``dashboard/tests/browser.py``."""

from __future__ import annotations

import shutil
import uuid
from typing import Any

import httpx
import pytest

from dashboard.tests.browser import Server, log_in, screenshot
from velocity.auth import issue_token
from velocity.testing import REPO_ROOT, require_chromium

pytestmark = pytest.mark.slow

require_chromium()

DOCS_IMG = REPO_ROOT / "docs" / "img"


class Clicks:
    """Counts the operator's clicks on the page (the three-click promise is about clicks, not typing)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        page.context.add_init_script(
            "addEventListener('click', () => sessionStorage.clicks = +(sessionStorage.clicks||0) + 1, true)"
        )

    def count(self) -> int:
        return int(self.page.evaluate("+(sessionStorage.clicks || 0)"))


def session_status(server: Server, session: dict[str, Any]) -> str:
    headers = {"Authorization": f"Bearer {session['token']}"}
    return str(
        httpx.get(f"{server.url}/api/v1/sessions/{session['id']}/", headers=headers, timeout=10).json()["status"]
    )


def keep(path: Any, name: str) -> None:
    shutil.copyfile(path, DOCS_IMG / f"{name}.png")


def test_stopping_a_users_spike_takes_three_clicks(page: Any, server: Server) -> None:
    user = uuid.uuid4()
    spike = [server.create_session(f"spike-{index}", user_id=user) for index in range(2)]
    for session in spike:
        server.wait_active(session)
    log_in(page, "/dashboard/sessions/")
    clicks = Clicks(page)
    page.reload()
    row = page.locator(f'tr[data-session="{spike[0]["id"]}"]')
    row.get_by_role("link", name=str(user)[:8]).click()  # 1: the user id, on any page listing the user
    page.get_by_role("link", name="End all and block…").click()  # 2
    page.get_by_label("Reason").fill("runaway spend on two previews")
    page.get_by_role("button", name="End all live sessions and block new ones").click()  # 3
    page.get_by_text("New sessions blocked; 2 live sessions ended.").wait_for()
    assert clicks.count() == 3
    assert [session_status(server, session) for session in spike] == ["ended", "ended"]
    refused = httpx.post(
        f"{server.url}/api/v1/sessions/",
        json={"project_id": "spike-again"},
        headers={"Authorization": f"Bearer {issue_token(sub=user, role='authenticated')}"},
        timeout=10,
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "user.blocked")
    page.reload()
    assert page.get_by_text("New sessions are blocked").is_visible()
    keep(screenshot(page, "user-page"), "user-page")


def test_a_stuck_users_session_is_found_by_an_id_prefix_or_its_provider_machine_id(page: Any, server: Server) -> None:
    session = server.create_session("find-me")
    server.wait_active(session)
    log_in(page, "/dashboard/")
    search = page.get_by_role("searchbox", name="Find a session: id prefix, machine id, project")
    search.fill(session["id"][:8])
    search.press("Enter")
    page.locator(f'tr[data-session="{session["id"]}"]').wait_for()
    assert page.locator("tr[data-session]").count() == 1
    keep(screenshot(page, "search-prefix"), "search")
    page.goto("/dashboard/machines/")
    machine = page.locator("tr[data-machine]", has_text="find-me").locator("code").first
    provider_id = str(machine.get_attribute("title")).split(":", 1)[1]
    page.goto("/dashboard/sessions/")
    page.get_by_label("Search", exact=True).fill(provider_id)
    page.get_by_role("button", name="Filter").click()
    page.locator(f'tr[data-session="{session["id"]}"]').wait_for()
    page.get_by_label("Search", exact=True).fill("abc12")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_text("'abc12' is too short: type at least 6 characters of an id").is_visible()


def test_a_quota_change_reads_as_a_diff_on_the_audit_page(page: Any) -> None:
    user = uuid.uuid4()
    log_in(page, f"/dashboard/users/{user}/")
    assert page.get_by_text("the default quota", exact=True).is_visible()
    limit = page.get_by_label("Live sessions at once")
    for value in ("5", "3"):  # the first save makes the override, the second changes it
        limit.fill(value)
        with page.expect_navigation():
            page.get_by_role("button", name="Save quota").click()
        assert page.get_by_text("Quota saved").is_visible()
    page.goto(f"/dashboard/audit/?action=quota.update&target={user.hex[:8]}")
    row = page.locator("tr[data-audit]")
    assert row.count() == 1
    assert row.locator("ul.diff li").all_inner_texts() == ["max_concurrent_sessions: 5 → 3"]
    assert row.get_by_role("link", name=str(user)[:8]).get_attribute("href") == f"/dashboard/users/{user}/"
    screenshot(page, "audit-diff")
    page.goto("/dashboard/audit/")  # with the other tests' blocks and ends: reasons beside the changes
    keep(screenshot(page, "audit"), "audit")


def test_the_user_page_its_confirmation_and_the_audit_page_fit_a_phone(page: Any, server: Server) -> None:
    user = uuid.uuid4()
    server.create_session("phone-user", user_id=user)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, f"/dashboard/users/{user}/")
    for path in (f"/dashboard/users/{user}/", f"/dashboard/users/{user}/stop/", "/dashboard/audit/"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (path, width)
    page.goto(f"/dashboard/users/{user}/")
    screenshot(page, "user-page-phone")
