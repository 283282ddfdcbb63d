"""The warm pool on the dashboard, under frozen time: the overview shows its size against its target and
why, its hit rate and its hourly cost; the costs page shows what it cost and a "warm pool" row."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.test import override_settings
from django.urls import reverse

from machines.pricing import CENT
from machines.services import machine_claim_warm
from machines.services.pool_target import pool_machine_hourly_cost
from machines.tests.factories import machine_with_history

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POOL = {"WARM_POOL_MIN": 2, "WARM_POOL_MAX": 8, "POOL_BUDGET_USD_PER_HOUR": "", "MACHINE_PROVIDER": "local"}


def pool_of(count: int, *, since: datetime) -> None:
    for _ in range(count):
        machine_with_history([("created", since), ("started", since + timedelta(seconds=2))], is_warm=True)


@pytest.mark.django_db
def test_the_costs_page_shows_what_the_pool_costs_and_its_row(staff_client: Any) -> None:
    with time_machine.travel(T0, tick=False), override_settings(**POOL):
        pool_of(2, since=T0 - timedelta(hours=3))
        page = staff_client.get(reverse("dashboard:costs")).content.decode()
    hourly = pool_machine_hourly_cost(memory_mb=512) * 2
    month = hourly * 3 - pool_machine_hourly_cost(memory_mb=512) * 2 * Decimal(4) / 3600  # started 2 s late
    assert f"${hourly:.4f}/h" in page
    assert f"${month:.4f} month to date" in page
    assert "<td>warm pool</td>" in page


@pytest.mark.django_db
def test_the_overview_shows_the_pool_its_target_hit_rate_and_cost(staff_client: Any) -> None:
    with time_machine.travel(T0, tick=False), override_settings(**POOL):
        pool_of(2, since=T0 - timedelta(minutes=10))
        machine_with_history([("created", T0 - timedelta(seconds=9)), ("started", T0)], assigned_at=T0)
        assert machine_claim_warm(memory_mb=512, session_id="s-1", now=T0) is not None
        response = staff_client.get(reverse("dashboard:overview"), {"format": "json"})
    numbers = response.json()["numbers"]["warm_pool"]
    hourly = pool_machine_hourly_cost(memory_mb=512)
    assert numbers == {
        "size": 1,
        "ready": 1,
        "suspended": 0,
        "target": 2,
        "target_reason": "floor",
        "hit_rate": 0.5,
        "usd_per_hour": str(hourly.quantize(CENT)),
    }
    assert "1 of 2 create(s) served warm" in response.json()["regions"]["overview_numbers"]


@pytest.mark.django_db
def test_a_budget_that_caps_the_pool_is_named_as_the_reason(staff_client: Any) -> None:
    budget = pool_machine_hourly_cost(memory_mb=512)
    with time_machine.travel(T0, tick=False), override_settings(**{**POOL, "POOL_BUDGET_USD_PER_HOUR": str(budget)}):
        html = staff_client.get(reverse("dashboard:overview")).content.decode()
    assert 'data-pool-reason="budget"' in html and "pays for 1 machine(s)" in html


@pytest.mark.django_db
def test_a_malformed_budget_is_shown_not_a_server_error(staff_client: Any) -> None:
    with override_settings(**{**POOL, "POOL_BUDGET_USD_PER_HOUR": "lots"}):
        response = staff_client.get(reverse("dashboard:overview"))
    assert response.status_code == 200
    assert "POOL_BUDGET_USD_PER_HOUR must be a number" in response.content.decode()
