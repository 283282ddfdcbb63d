"""Webhooks end to end in a real Chromium against a real server (daphne, the task cluster, the local provider)
and a real receiver process that verifies every signature: the operator registers an endpoint on the
dashboard and copies its secret from the one page that shows it; a session's lifecycle reaches the receiver
through the task cluster, a 500 is tried again on the cluster's scheduler, and one delivery is redelivered.
The screenshot of the deliveries is docs/img/webhooks.png."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboard.tests.browser import Server, log_in, running_server, screenshot
from velocity.auth import issue_token
from velocity.testing import REPO_ROOT, require_chromium, wait_until
from webhooks.testing import Receiver, receiver_process

pytestmark = pytest.mark.slow

require_chromium()

DOCS_IMG = REPO_ROOT / "docs" / "img"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """Answers the first delivery with a 500, then 200."""
    with receiver_process(tmp_path_factory.mktemp("receiver"), plan="500,200") as started:
        yield started


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The browser harness's server, allowed to deliver to the receiver on 127.0.0.1, retrying after 1 s."""
    var_dir = tmp_path_factory.mktemp("browser") / "var"
    with running_server(var_dir, WEBHOOKS_ALLOW_PRIVATE="1", WEBHOOKS_RETRY_SCHEDULE="1,5") as started:
        yield started


def received_types(receiver: Receiver) -> list[str]:
    return [got["payload"]["type"] for got in receiver.received() if got["payload"]]


def test_an_operator_registers_an_endpoint_and_watches_a_sessions_events_arrive_signed(
    page: Any, server: Server, receiver: Receiver, tmp_path: Path
) -> None:
    log_in(page, "/dashboard/webhooks/")
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_label("Description").fill("Billing and on-call")
    page.get_by_role("button", name="Register endpoint").click()
    secret = page.locator("[data-secret]").inner_text()
    assert secret.startswith("whsec_")
    receiver.secrets(secret)
    page.get_by_role("link", name="Go to the endpoint").click()
    session = server.create_session("webhook-demo")
    server.wait_active(session)
    # The first delivery got a 500; the cluster's scheduler (every ~15 s) tries it again.
    wait_until(lambda: len(receiver.received()) >= 3, timeout=90, interval=0.5, what="a retried delivery")
    assert sorted(set(received_types(receiver))) == ["session.active", "session.created"]
    assert all(got["verified_by"] == [0] for got in receiver.received())
    first, *_ = receiver.received()
    retried = [got for got in receiver.received() if got["headers"]["webhook-id"] == first["headers"]["webhook-id"]]
    assert [got["answered"] for got in retried] == [500, 200]
    page.reload()
    page.locator('[data-stat="delivery.status"]', has_text="delivered").nth(1).wait_for()
    shutil.copyfile(screenshot(page, "webhooks"), DOCS_IMG / "webhooks.png")
    page.get_by_role("button", name="Redeliver").first.click()
    page.get_by_text("queued again").wait_for()
    wait_until(lambda: len(receiver.received()) >= 4, timeout=30, interval=0.3, what="the redelivery")
    last = receiver.received()[-1]
    assert last["verified_by"] == [0] and last["answered"] == 200


def test_the_webhook_pages_fit_a_phone(browser: Any, server: Server) -> None:
    token = issue_token(sub=None, role="service_role")
    made = httpx.post(
        f"{server.url}/api/v1/webhooks/endpoints/",
        json={"url": "https://hooks.example.com/a-rather-long-path/for-the-phone", "enabled": False},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=server.url, is_mobile=True)
    phone = context.new_page()
    widths = {}
    try:
        log_in(phone, "/dashboard/webhooks/")
        for name, path in (("list", "/dashboard/webhooks/"), ("endpoint", f"/dashboard/webhooks/{made.json()['id']}/")):
            phone.goto(path)
            widths[name] = int(phone.evaluate("document.documentElement.scrollWidth"))
            screenshot(phone, f"phone-webhooks-{name}")
    finally:
        context.close()
    assert all(width <= 390 for width in widths.values()), widths
