"""The auto-sized warm pool in Chromium against a real server (daphne, task cluster, local provider): a
session is served from the pool, the overview's pool card shows it (size against target, hit rate, cost
per hour) and the costs page shows what the pool costs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from dashboard.tests.browser import PASSWORD, Server, _destroy_local_machines, log_in, screenshot
from velocity.testing import embedded_env, free_port, manage, require_chromium, supervised, wait_until

pytestmark = pytest.mark.slow

require_chromium()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own, with an auto-sized pool of 1 to 3 machines."""
    var_dir = tmp_path_factory.mktemp("browser-pool") / "var"
    env = embedded_env(
        var_dir,
        PORT=str(free_port()),
        HOST="127.0.0.1",
        VELOCITY_ADMIN_PASSWORD=PASSWORD,
        SUPABASE_JWT_SECRET=settings.SUPABASE_JWT_SECRET,
        WARM_POOL_MIN="1",
        WARM_POOL_MAX="3",
    )
    manage(env, "migrate", "-v0")
    manage(env, "ensure_operator")
    try:
        with supervised(env) as url:
            manage(env, "sweep", "--only", "refill_warm_pool")
            yield Server(url, var_dir)
    finally:
        _destroy_local_machines(var_dir)


def test_a_session_served_warm_shows_on_the_pool_card_and_the_pool_cost_on_the_costs_page(
    page: Any, server: Server
) -> None:
    session = server.create_session("browser-pool")
    server.wait_active(session)
    log_in(page)
    card = page.locator("section", has=page.get_by_role("heading", name="Warm pool"))
    wait_until(
        lambda: "1 of 1 create(s) served warm" in card.inner_text(),
        timeout=30,
        interval=0.5,
        what="the claim on the pool card",
    )
    assert card.locator('[data-stat="pool.hit_rate"]').inner_text() == "100.0%"
    assert card.locator('[data-stat="pool.cost"]').inner_text().startswith("$0.00")
    card.scroll_into_view_if_needed()
    screenshot(page, "overview-warm-pool")
    page.goto("/dashboard/costs/")
    pool_cost = page.locator("#h-pool-cost").locator("..")
    assert pool_cost.locator('[data-stat="pool.cost"]').inner_text().endswith("/h")
    assert page.get_by_role("cell", name="warm pool").is_visible()
    screenshot(page, "costs-warm-pool")
