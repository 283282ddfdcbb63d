"""Cost selectors and rollups, with exact numbers under frozen time."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from machines.pricing import running_cost, stopped_cost
from machines.selectors import (
    cost_daily,
    cost_month_to_date,
    cost_per_user,
    cost_projected_month,
    cost_today,
    machine_cost_so_far,
    machine_uptime,
)
from machines.services import cost_rollup_refresh
from machines.tests.factories import machine_with_history
from sessions.models import EndReason, PreviewSession, SessionStatus

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
PICO = Decimal("1e-12")


def run(seconds: float) -> Decimal:
    return running_cost("shared", 1, 512, None, seconds)


def test_a_machines_cost_so_far_is_its_started_time_plus_the_storage_of_its_other_states() -> None:
    t0 = NOW - 3 * HOUR
    machine = machine_with_history(
        [("created", t0), ("starting", t0 + timedelta(seconds=10)), ("started", t0 + timedelta(seconds=60))]
    )
    assert machine_cost_so_far(machine, NOW) == run(3 * 3600 - 60) + stopped_cost(1, 60)
    assert machine_uptime(machine, NOW) == 3 * HOUR - timedelta(seconds=60)


def test_a_destroyed_machine_costs_nothing_after_its_destruction() -> None:
    t0 = NOW - 5 * HOUR
    machine = machine_with_history(
        [("created", t0), ("started", t0), ("destroying", t0 + HOUR), ("destroyed", t0 + HOUR)]
    )
    assert machine_cost_so_far(machine, NOW) == run(3600)
    assert machine_uptime(machine, NOW) == HOUR


def test_fly_machines_are_priced_with_their_regions_markup() -> None:
    t0 = NOW - HOUR
    machine = machine_with_history([("created", t0), ("started", t0)], provider="fly", region="sjc")
    assert machine_cost_so_far(machine, NOW) == running_cost("shared", 1, 512, "sjc", 3600)


def test_costs_are_split_at_midnight_and_between_the_pool_and_the_user_with_idle_time_counted() -> None:
    t0 = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)  # warm at 22:00, claimed at 23:00, ended 01:00, reaped idle
    claimed = t0 + HOUR
    machine = machine_with_history(
        [("created", t0), ("started", t0), ("destroyed", t0 + 3 * HOUR)], is_warm=False, assigned_at=claimed
    )
    user = "8f0c2d9e-0000-4000-8000-000000000001"
    PreviewSession.objects.create(
        user_id=user,
        project_id="p",
        machine=machine,
        status=SessionStatus.ENDED,
        end_reason=EndReason.IDLE,
        last_activity_at=claimed + timedelta(minutes=30),
        ended_at=t0 + 3 * HOUR,
    )
    with time_machine.travel(NOW, tick=False):
        assert cost_rollup_refresh(now=NOW) == 3  # the pool on the 26th, the user on the 26th and the 27th
    days = dict(cost_daily(now=NOW, days=2))
    hour = run(3600).quantize(Decimal("0.000001"))  # rows are stored to a millionth of a dollar
    assert days[NOW.date() - timedelta(days=1)].cost == 2 * hour  # the pool's hour and the user's
    assert days[NOW.date()].cost == hour
    # Idle: the hour in the pool, then from the last activity (23:30) until the end (01:00).
    assert sum(totals.idle_seconds for _, totals in days.items()) == 3600 + 5400
    by_user = dict(cost_per_user(since=NOW.date() - timedelta(days=1)))
    assert by_user[user].cost == 2 * hour
    assert by_user[None].idle_seconds == 3600


def test_today_month_to_date_and_the_projection_follow_the_clock() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    machine_with_history([("created", start), ("started", start)])
    today, mtd = cost_today(NOW), cost_month_to_date(NOW)
    assert today.cost == run(12 * 3600)
    # 27 daily slices summed: equal to the one-piece price up to Decimal's 28th significant digit.
    assert mtd.cost.quantize(PICO) == run((26 * 24 + 12) * 3600).quantize(PICO)
    assert mtd.idle_seconds == (26 * 24 + 12) * 3600  # no session ever: all of it idle
    assert cost_projected_month(NOW) == mtd.cost * Decimal(30 * 86400) / Decimal((26 * 24 + 12) * 3600)


def test_rolling_up_twice_writes_the_same_rows() -> None:
    machine_with_history([("created", NOW - HOUR), ("started", NOW - HOUR)])
    assert cost_rollup_refresh(now=NOW) == 1
    first = dict(cost_daily(now=NOW, days=1))
    assert cost_rollup_refresh(now=NOW) == 1
    assert dict(cost_daily(now=NOW, days=1)) == first
