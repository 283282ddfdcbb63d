"""The sample editor (`samples/editor/`) in Debian's headless Chromium, against a real `make up`-style
stack (`velocity.run`: server, task cluster, a local agent): the page, on its own origin, uses the official
JavaScript client to start a preview, writes `index.html`, and the preview URL serves what was typed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings

from velocity.auth import issue_token
from velocity.testing import (
    REPO_ROOT,
    embedded_env,
    free_port,
    manage,
    require,
    require_chromium,
    static_site,
    supervised,
)

pytestmark = pytest.mark.slow

SUPABASE_UMD = REPO_ROOT / "clients/js/node_modules/@supabase/supabase-js/dist/umd/supabase.js"
require_chromium()
require(SUPABASE_UMD.exists(), "the JS client's dependencies are not installed (make test runs npm ci in clients/js)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The repository served as static files on one port, the orchestrator on another (another origin)."""
    with static_site(REPO_ROOT) as page:
        env = embedded_env(
            tmp_path_factory.mktemp("editor-sample") / "var",
            PORT=str(free_port()),
            HOST="127.0.0.1",
            CORS_ALLOWED_ORIGINS=page,
            SUPABASE_JWT_SECRET=settings.SUPABASE_JWT_SECRET,  # so the tokens this process issues are accepted
        )
        manage(env, "migrate", "-v0")
        with supervised(env) as api:
            yield {"page": f"{page}/samples/editor/", "api": api}


def test_the_sample_editor_starts_a_preview_and_the_preview_serves_what_was_typed(
    browser: Any, stack: dict[str, str]
) -> None:
    page = browser.new_context().new_page()
    page.goto(stack["page"])
    page.fill("input[name=apiUrl]", stack["api"])
    page.fill("input[name=token]", issue_token(sub=uuid.uuid4()))
    page.fill("input[name=projectId]", f"sample-{uuid.uuid4()}")
    page.click("form#start button")
    page.wait_for_function("document.getElementById('log').textContent.includes('synced index.html')", timeout=60_000)
    page.fill("#source", "<h1>typed in the browser</h1>")
    page.wait_for_function("document.getElementById('log').textContent.split('synced').length > 2", timeout=30_000)
    preview_url = page.eval_on_selector("#preview", "frame => frame.src").split("?")[0]
    assert "typed in the browser" in httpx.get(preview_url, timeout=10).text
    page.click("#end")
    page.wait_for_function("document.getElementById('status').textContent === 'ended'", timeout=30_000)
    page.context.close()
