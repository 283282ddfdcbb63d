"""CORS as a browser sees it: Debian's headless Chromium, a page served by a static server on another
port (another origin), and a real server (``velocity.run web`` in a temp var dir).

The page on the allowed origin creates a session with ``fetch``, lists it and ends it; the same page on
an origin the server does not list (``localhost`` instead of ``127.0.0.1``: another origin) is blocked by
the browser before its script sees any answer.
"""

from __future__ import annotations

import functools
import http.server
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright import sync_api

from velocity.auth import issue_token
from velocity.testing import REPO_ROOT, embedded_env, free_port, manage, require, wait_for_http

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
require(CHROMIUM.exists(), f"no Chromium at {CHROMIUM}: install Debian's chromium package (.ci/run does)")

# What an editor does: create, list, end. Each step's status and body come back to the test.
EDITOR_FLOW = """async ({ api, token, projectId }) => {
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }
  const call = async (method, path, body) => {
    const response = await fetch(api + path, { method, headers, body: body && JSON.stringify(body) })
    return { status: response.status, body: await response.json() }
  }
  const created = await call('POST', '/sessions/', { project_id: projectId })
  const listed = await call('GET', `/sessions/?project_id=${projectId}`)
  const ended = await call('DELETE', `/sessions/${created.body.id}/`)
  return { created, listed, ended }
}"""
BLOCKED_FETCH = """async ({ api, token }) => {
  try {
    await fetch(api + '/sessions/', { headers: { Authorization: `Bearer ${token}` } })
    return 'answered'
  } catch (error) {
    return error.name
  }
}"""


@dataclass
class Origins:
    api: str
    allowed: str
    refused: str


@pytest.fixture(scope="module")
def origins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origins]:
    root = tmp_path_factory.mktemp("editor-page")
    (root / "index.html").write_text("<!doctype html><title>editor</title><p>an editor on its own origin</p>")
    page_port, api_port = free_port(), free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    static = http.server.ThreadingHTTPServer(("127.0.0.1", page_port), handler)
    threading.Thread(target=static.serve_forever, daemon=True).start()
    allowed = f"http://127.0.0.1:{page_port}"
    env = embedded_env(
        tmp_path_factory.mktemp("cors") / "var",
        PORT=str(api_port),
        HOST="127.0.0.1",
        CORS_ALLOWED_ORIGINS=allowed,
        SUPABASE_JWT_SECRET=settings.SUPABASE_JWT_SECRET,  # so the tokens this process issues are accepted
    )
    manage(env, "migrate", "-v0")
    server = subprocess.Popen([sys.executable, "-m", "velocity.run", "web"], cwd=REPO_ROOT, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{api_port}/health", timeout=30)
        yield Origins(f"http://127.0.0.1:{api_port}/api/v1", allowed, f"http://localhost:{page_port}")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        static.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def page_at(browser: Any, url: str) -> Any:
    page = browser.new_context().new_page()
    page.goto(url)
    return page


def test_a_page_on_an_allowed_origin_creates_lists_and_ends_a_session(browser: Any, origins: Origins) -> None:
    page = page_at(browser, origins.allowed + "/index.html")
    project_id = f"cors-{uuid.uuid4()}"
    arguments = {"api": origins.api, "token": issue_token(sub=uuid.uuid4()), "projectId": project_id}
    flow = page.evaluate(EDITOR_FLOW, arguments)
    assert (flow["created"]["status"], flow["created"]["body"]["status"]) == (201, "creating")
    assert [s["id"] for s in flow["listed"]["body"]["results"]] == [flow["created"]["body"]["id"]]
    assert (flow["ended"]["status"], flow["ended"]["body"]["status"]) == (200, "ended")
    page.context.close()


def test_a_page_on_an_origin_not_listed_is_blocked_by_the_browser(browser: Any, origins: Origins) -> None:
    page = page_at(browser, origins.refused + "/index.html")
    refusals: list[str] = []
    page.on("console", lambda message: refusals.append(message.text) if "CORS" in message.text else None)
    outcome = page.evaluate(BLOCKED_FETCH, {"api": origins.api, "token": issue_token(sub=uuid.uuid4())})
    assert outcome == "TypeError"  # "Failed to fetch": the script never sees the answer
    assert any(origins.refused in text for text in refusals), refusals
    page.context.close()
