"""CORS as a browser sees it: Debian's headless Chromium, a page served by a static server on another
port (another origin), and a real server (``velocity.run web`` in a temp var dir).

The page on the allowed origin creates a session with ``fetch``, lists it and ends it; the same page on
an origin the server does not list (``localhost`` instead of ``127.0.0.1``: another origin) is blocked by
the browser before its script sees any answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings

from velocity.auth import issue_token
from velocity.testing import (
    embedded_env,
    free_port,
    manage,
    require_chromium,
    static_site,
    supervised,
)

pytestmark = pytest.mark.slow

require_chromium()

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
    with static_site(root) as allowed:
        env = embedded_env(
            tmp_path_factory.mktemp("cors") / "var",
            PORT=str(free_port()),
            HOST="127.0.0.1",
            CORS_ALLOWED_ORIGINS=allowed,
            SUPABASE_JWT_SECRET=settings.SUPABASE_JWT_SECRET,  # so the tokens this process issues are accepted
        )
        manage(env, "migrate", "-v0")
        with supervised(env, "web") as api:
            yield Origins(f"{api}/api/v1", allowed, allowed.replace("127.0.0.1", "localhost"))


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
