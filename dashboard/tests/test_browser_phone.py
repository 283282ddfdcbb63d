"""The dashboard on a phone (390 x 844) and the details around it, in a real Chromium against a real server:
no page scrolls sideways, a wide table scrolls in its own box, the live badge polls when the socket is
blocked, and the playground's session ends with its Stop button or with the page.

Screenshots ``phone-<page>.png`` go to the screenshot directory (the README's copies are in ``docs/img/``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from dashboard.tests.browser import LIVE_TIMEOUT_MS, Server, log_in, screenshot
from velocity.testing import require_chromium, wait_until

pytestmark = pytest.mark.slow

require_chromium()

PHONE = {"width": 390, "height": 844}
PAGES = {
    "overview": "/dashboard/",
    "sessions": "/dashboard/sessions/",
    "machines": "/dashboard/machines/",
    "costs": "/dashboard/costs/",
    "audit": "/dashboard/audit/",
    "playground": "/dashboard/playground/",
    "policy": "/dashboard/policy/?idle_timeout_minutes=15&max_concurrent=1",
    "policy-confirmation": "/dashboard/policy/apply/?idle_timeout_minutes=15",
}
# A Content-Security-Policy without ws: in connect-src makes the constructor throw a SecurityError.
BLOCKED_SOCKET = """
window.WebSocket = function () { throw new DOMException("Refused to connect: CSP connect-src", "SecurityError"); };
"""
# A socket the server refuses: it opens nothing and closes, again and again.
REFUSED_SOCKET = """
const RealWebSocket = window.WebSocket;
window.WebSocket = function (url) { return new RealWebSocket(url.replace("/ws/ops/", "/ws/nowhere/")); };
"""


@pytest.fixture
def phone(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport=PHONE, base_url=server.url, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(LIVE_TIMEOUT_MS)
    yield page
    context.close()


def session_now(server: Server, session: dict[str, Any]) -> dict[str, Any]:
    """The session as the API shows it now (``session`` carries its id and its owner's token)."""
    headers = {"Authorization": f"Bearer {session['token']}"}
    response = httpx.get(f"{server.url}/api/v1/sessions/{session['id']}/", headers=headers, timeout=10)
    return dict(response.json())


def document_width(page: Any) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth"))


def test_every_dashboard_page_fits_a_phone_without_sideways_scroll(phone: Any, server: Server) -> None:
    session = server.create_session("phone-pages")
    server.wait_active(session)
    log_in(phone)
    pages = {
        **PAGES,
        "session": f"/dashboard/sessions/{session['id']}/",
        "kill-confirmation": f"/dashboard/machines/{session_now(server, session)['machine_id']}/kill/",
        "end-confirmation": f"/dashboard/sessions/{session['id']}/end/",
    }
    widths = {name: page_width(phone, path, name) for name, path in pages.items()}
    phone.get_by_role("button", name="End the session").click()  # so the audit page has a record, and the
    phone.locator('[data-stat="session.status"]', has_text="ended").wait_for()  # session page an ended one
    widths["session-ended"] = page_width(phone, f"/dashboard/sessions/{session['id']}/", "session-ended")
    widths["audit"] = page_width(phone, PAGES["audit"], "audit")
    assert {name: width for name, width in widths.items() if width > PHONE["width"]} == {}


def page_width(phone: Any, path: str, name: str) -> int:
    """Open ``path`` on the phone (once its live badge has settled), save ``phone-<name>.png``, and measure."""
    phone.goto(path)
    phone.locator("#live-status:not([data-state=connecting])").wait_for()
    screenshot(phone, f"phone-{name}")
    return document_width(phone)


def test_the_machines_table_scrolls_in_its_own_box_and_its_kill_button_is_reachable(phone: Any, server: Server) -> None:
    session = server.create_session("phone-machines")
    server.wait_active(session)
    log_in(phone, "/dashboard/machines/")
    box = phone.locator('[data-region="machine_rows"] .table-scroll')
    assert box.evaluate("b => b.scrollWidth > b.clientWidth")  # wider than the phone: it scrolls, the page not
    assert document_width(phone) <= PHONE["width"]
    box.evaluate("b => { b.scrollLeft = b.scrollWidth; }")  # what a swipe does
    phone.wait_for_function("() => document.body.dataset.refreshedAt")  # live refreshes keep the scroll
    kill = phone.locator("tr[data-machine]", has_text="phone-machines").get_by_role("link", name="Kill machine")
    edge = kill.bounding_box()
    assert edge is not None and edge["x"] >= 0 and edge["x"] + edge["width"] <= PHONE["width"]
    assert document_width(phone) <= PHONE["width"]
    screenshot(phone, "phone-machines-scrolled")


def test_the_live_badge_polls_when_the_socket_is_blocked_and_new_sessions_still_appear(
    page: Any, server: Server
) -> None:
    page.context.add_init_script(BLOCKED_SOCKET)
    log_in(page)
    badge = page.locator("#live-status")
    page.locator("#live-status[data-state=polling]").wait_for()
    assert badge.inner_text() == "Polling every 5 s"
    page.evaluate("window.__notReloaded = true")
    session = server.create_session("phone-polled")
    page.locator(f'tr[data-session="{session["id"]}"]').wait_for()  # by polling: there is no socket
    assert page.evaluate("window.__notReloaded") is True
    assert badge.get_attribute("data-state") == "polling"
    screenshot(page, "live-badge-polling")


def test_the_live_badge_polls_when_the_server_keeps_closing_the_socket(page: Any) -> None:
    page.context.add_init_script(REFUSED_SOCKET)
    log_in(page)
    page.locator("#live-status[data-state=polling]").wait_for()
    refreshed = page.evaluate("document.body.dataset.refreshedAt || ''")
    page.wait_for_function("at => (document.body.dataset.refreshedAt || '') !== at", arg=refreshed)


def start_playground(page: Any) -> dict[str, str]:
    """Start the static sample's session; its id, the API token the page uses, and its preview URL."""
    log_in(page, "/dashboard/playground/")
    page.get_by_role("button", name="Start session").click()
    page.get_by_text("Live: session").wait_for(timeout=90_000)
    config = page.evaluate("JSON.parse(document.getElementById('pg-config').textContent)")
    return {
        "id": page.evaluate("document.body.dataset.sessionId"),
        "token": config["token"],
        "preview_url": page.locator("#pg-url").get_attribute("href"),
    }


def session_status(server: Server, started: dict[str, str]) -> str:
    return str(session_now(server, started)["status"])


def assert_machine_gone(page: Any, started: dict[str, str]) -> None:
    page.goto(f"/dashboard/sessions/{started['id']}/")
    assert page.locator('[data-stat="session.status"]').inner_text() == "ended"
    page.locator("dd", has_text=" · destroyed · ").wait_for()  # the live page follows destroying → destroyed
    with pytest.raises(httpx.TransportError):
        httpx.get(started["preview_url"], timeout=5)


def test_the_playgrounds_stop_button_ends_its_session_and_destroys_the_machine(page: Any, server: Server) -> None:
    started = start_playground(page)
    page.get_by_role("button", name="Stop session").click()
    page.get_by_text(f"Stopped: session {started['id']} ended").wait_for()
    assert page.get_by_role("button", name="Start session").is_enabled()
    assert page.locator("#pg-preview").get_attribute("src") == "about:blank"
    screenshot(page, "playground-stopped")
    assert session_status(server, started) == "ended"
    assert_machine_gone(page, started)


def test_closing_the_playground_ends_its_session(page: Any, server: Server) -> None:
    started = start_playground(page)
    watcher = page.context.new_page()
    page.close(run_before_unload=True)
    wait_until(lambda: session_status(server, started) == "ended", timeout=30, interval=0.3, what="session ended")
    assert_machine_gone(watcher, started)


def test_the_admin_pages_operators_use_fit_a_phone_too(phone: Any, server: Server) -> None:
    session = server.create_session("phone-admin")
    server.wait_active(session)
    log_in(phone, "/admin/")
    widths = {"index": document_width(phone)}
    for name in ("preview_sessions/previewsession", "machines/machine"):
        phone.goto(f"/admin/{name}/")
        widths[name] = document_width(phone)
    phone.locator("tr", has_text=session["id"]).locator("input.action-select").check()
    phone.locator("select[name=action]").select_option("kill_machines")
    phone.get_by_role("button", name="Go").click()
    phone.get_by_text("Kill these 1 machine(s)?").wait_for()
    widths["kill confirmation"] = document_width(phone)
    screenshot(phone, "phone-admin-kill")
    assert {name: width for name, width in widths.items() if width > PHONE["width"]} == {}
