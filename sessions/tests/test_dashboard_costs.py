"""Cost over time windows from a machine's state changes (pure: no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from machines.pricing import running_cost, stopped_cost
from sessions.dashboard import costs

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def life(*events: tuple[str, datetime], last_activity_at: datetime | None = None) -> costs.MachineLife:
    return costs.MachineLife(
        machine_id=uuid.uuid4(),
        cpu_kind="shared",
        cpus=1,
        memory_mb=512,
        region="iad",
        events=list(events),
        user_id=uuid.uuid4(),
        last_activity_at=last_activity_at,
    )


def test_a_running_machine_costs_its_started_time_up_to_now() -> None:
    machine = life(("created", NOW - timedelta(hours=2)), ("started", NOW - timedelta(hours=1)))
    cost = costs.life_cost(machine, start=NOW - timedelta(days=1), end=NOW, now=NOW)
    assert cost == stopped_cost(1, 3600) + running_cost("shared", 1, 512, "iad", 3600)


def test_a_destroyed_machine_costs_nothing_after_its_destruction() -> None:
    machine = life(("started", NOW - timedelta(hours=3)), ("destroyed", NOW - timedelta(hours=2)))
    assert costs.intervals(machine.events, now=NOW) == [("started", NOW - timedelta(hours=3), NOW - timedelta(hours=2))]


def test_daily_costs_split_a_machine_across_midnight() -> None:
    midnight = NOW.replace(hour=0)
    machine = life(("started", midnight - timedelta(hours=1)), ("destroyed", midnight + timedelta(hours=3)))
    days = costs.daily_costs([machine], now=NOW, days=3)
    assert [day for day, _ in days] == [(NOW - timedelta(days=n)).date() for n in (2, 1, 0)]
    hour = running_cost("shared", 1, 512, "iad", 3600)
    assert [cost for _, cost in days] == [Decimal(0), hour, 3 * hour]


def test_idle_time_is_the_started_time_after_the_last_activity() -> None:
    machine = life(("started", NOW - timedelta(hours=2)), last_activity_at=NOW - timedelta(minutes=30))
    spans = costs.intervals(machine.events, now=NOW)
    assert costs.idle_seconds(machine, spans, now=NOW) == 1800
    assert costs.started_seconds(spans) == 7200


def test_the_month_is_projected_at_the_month_to_date_pace() -> None:
    halfway = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # 15 of November's 30 days gone
    assert costs.projected_month(Decimal(10), now=halfway) == Decimal(20)
