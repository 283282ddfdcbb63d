"""The auto-sized warm pool under frozen time, against the Fly fake: it grows after a burst of creates,
waits out the demand window before it shrinks, shrinks to its floor when idle, and never costs more
per hour than its budget."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.test import override_settings

from machines import tasks
from machines.models import Machine, MachineState
from machines.services import machine_claim_warm, machine_pool_autosize
from machines.services.pool_target import pool_machine_hourly_cost, pool_report
from machines.tests.factories import machine_with_history

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
POOL = {"WARM_POOL_MIN": 1, "WARM_POOL_MAX": 10, "FLY_REGION": "iad", "POOL_BUDGET_USD_PER_HOUR": ""}


@pytest.fixture
def clock(fly_api: object) -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(T0, tick=False) as traveller, override_settings(**POOL):
        yield traveller


def burst(creates: int, *, over_seconds: float, provision_seconds: float = 5.0) -> None:
    """``creates`` sessions given cold machines over ``over_seconds``, each started ``provision_seconds`` later."""
    now = datetime.now(tz=UTC)
    for index in range(creates):
        at = now - timedelta(seconds=provision_seconds + over_seconds * index / creates)
        started = at + timedelta(seconds=provision_seconds)
        machine_with_history([("created", at), ("started", started)], provider="fly", assigned_at=at)


def pool_size() -> int:
    return Machine.objects.filter(is_warm=True, state=MachineState.STARTED).count()


def autosize() -> tuple[str, int, int]:
    target, created, destroyed = machine_pool_autosize(now=datetime.now(tz=UTC), memory_mb=512)
    return target.reason, created, destroyed


@pytest.mark.django_db
def test_the_pool_grows_after_a_burst(clock: time_machine.Coordinates) -> None:
    assert autosize() == ("floor", 1, 0)
    clock.shift(timedelta(minutes=2))
    burst(12, over_seconds=10)  # 12 creates in the 20 s window (36/min), 5 s to provision each
    # 36/min x 5 s = 3 creates arrive while a machine provisions; with 50 % headroom, 4.5 -> 5
    assert autosize() == ("demand", 4, 0)
    assert pool_size() == 5


@pytest.mark.django_db
def test_the_pool_waits_out_the_demand_window_then_shrinks_to_its_floor_when_idle(
    clock: time_machine.Coordinates,
) -> None:
    burst(12, over_seconds=10)
    autosize()
    grown = pool_size()
    clock.shift(timedelta(minutes=1))  # the burst has left the short window: the target falls to 1...
    assert pool_report(now=datetime.now(tz=UTC), memory_mb=512).target.size == 1
    assert autosize()[1:] == (0, 0)  # ...but machines younger than the demand window are spared
    assert pool_size() == grown
    clock.shift(timedelta(minutes=10))
    assert autosize() == ("floor", 0, grown - 1)
    assert pool_size() == 1
    oldest_left = Machine.objects.filter(is_warm=True, state=MachineState.STARTED).get()
    assert oldest_left.created_at == max(m.created_at for m in Machine.objects.filter(is_warm=True))


@pytest.mark.django_db
def test_the_pool_never_passes_its_budget(clock: time_machine.Coordinates) -> None:
    hourly = pool_machine_hourly_cost(memory_mb=512)
    with override_settings(POOL_BUDGET_USD_PER_HOUR=str(hourly * Decimal("3.5"))):
        burst(30, over_seconds=10)
        assert autosize()[0] == "budget"
        report = pool_report(now=datetime.now(tz=UTC), memory_mb=512)
        assert (pool_size(), report.target.budget_cap) == (3, 3)
        assert report.hourly_cost <= Decimal(str(hourly * Decimal("3.5")))
    with override_settings(POOL_BUDGET_USD_PER_HOUR=str(hourly * Decimal("1.5"))):
        assert autosize() == ("budget", 0, 2)  # a lower budget destroys even machines made a moment ago
        assert pool_size() == 1


@pytest.mark.django_db
def test_a_malformed_budget_is_refused_with_its_name(clock: time_machine.Coordinates) -> None:
    with override_settings(POOL_BUDGET_USD_PER_HOUR="ten dollars"), pytest.raises(ValueError, match="POOL_BUDGET"):
        autosize()
    assert not Machine.objects.exists()


@pytest.mark.django_db
def test_the_fixed_size_setting_still_means_floor_and_ceiling(fly_api: object) -> None:
    with override_settings(WARM_POOL_SIZE=2, WARM_POOL_MIN=-1, WARM_POOL_MAX=-1, FLY_REGION="iad"):
        assert tasks.refill_warm_pool() == "warm pool of 2: created 2, destroyed 0"
        burst(30, over_seconds=10)
        assert tasks.refill_warm_pool() == "warm pool of 2: created 0, destroyed 0"


@pytest.mark.django_db
def test_the_report_counts_warm_claims_against_all_creates(clock: time_machine.Coordinates) -> None:
    autosize()
    burst(3, over_seconds=5)
    warm = Machine.objects.get(is_warm=True)
    assert machine_claim_warm(memory_mb=512, session_id="s-1", now=datetime.now(tz=UTC)) == warm
    report = pool_report(now=datetime.now(tz=UTC), memory_mb=512)
    assert (report.warm_claims, report.creates, report.hit_rate) == (1, 4, 0.25)


@pytest.mark.django_db
def test_a_suspended_reserve_is_resumed_before_any_machine_is_created(clock: time_machine.Coordinates) -> None:
    with override_settings(WARM_POOL_MIN=4, WARM_POOL_SUSPENDED=2):
        assert autosize() == ("floor", 4, 0)
        states = sorted(Machine.objects.filter(is_warm=True).values_list("state", flat=True))
        assert states == ["started", "started", "suspended", "suspended"]
        report = pool_report(now=datetime.now(tz=UTC), memory_mb=512)
        storage = pool_machine_hourly_cost(memory_mb=512, suspended=True)
        assert report.hourly_cost == 2 * pool_machine_hourly_cost(memory_mb=512) + 2 * storage
        assert storage < pool_machine_hourly_cost(memory_mb=512) / 10  # a suspended machine pays only storage
        reserve = set(Machine.objects.filter(state=MachineState.SUSPENDED).values_list("id", flat=True))
        for session in ("s-1", "s-2"):
            assert machine_claim_warm(memory_mb=512, session_id=session, now=datetime.now(tz=UTC)) is not None
        assert autosize()[1] == 2  # two new machines replace the claimed ones...
        resumed = Machine.objects.filter(id__in=reserve, state=MachineState.STARTED, is_warm=True)
        assert resumed.count() == 2  # ...after the reserve was resumed, ready for the next claims
        assert Machine.objects.filter(is_warm=True, state=MachineState.SUSPENDED).count() == 2
