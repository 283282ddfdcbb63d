from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import pytest

from machines.pricing import (
    CENT,
    SECONDS_PER_MONTH,
    machine_cost,
    monthly_price,
    published_monthly_price,
    region_multiplier,
    running_cost,
    stopped_cost,
)
from machines.providers.base import MachineState

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cpu_kind", "cpus", "memory_mb", "figure"),
    [
        ("shared", 1, 256, "1.94"),
        ("shared", 1, 512, "3.19"),
        ("shared", 1, 1024, "5.70"),
        ("shared", 1, 2048, "10.70"),
        ("shared", 2, 512, "3.89"),
        ("shared", 8, 16384, "85.56"),
        ("performance", 1, 2048, "31.00"),
        ("performance", 1, 4096, "41.00"),
        ("performance", 16, 131072, "976.00"),
    ],
)
def test_it_reproduces_the_figures_fly_publishes_for_the_base_region(
    cpu_kind: str, cpus: int, memory_mb: int, figure: str
) -> None:
    assert published_monthly_price(cpu_kind, cpus, memory_mb, "iad") == Decimal(figure)


def test_it_reproduces_the_sjc_figures_of_the_cost_management_page() -> None:
    assert published_monthly_price("shared", 1, 256, "sjc") == Decimal("2.32")
    assert 3 * published_monthly_price("shared", 1, 1024, "sjc") == Decimal("20.37")


def test_the_exact_shared_prices_are_half_cents_that_no_decimal_rounding_rule_maps_to_fly_figures() -> None:
    exact = [monthly_price("shared", 1, mb) for mb in (256, 512, 1024)]
    assert exact == [Decimal("1.945"), Decimal("3.195"), Decimal("5.695")]
    published = [Decimal("1.94"), Decimal("3.19"), Decimal("5.70")]
    for rule in (ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_HALF_DOWN):
        assert [price.quantize(CENT, rounding=rule) for price in exact] != published


def test_a_whole_month_of_running_costs_the_exact_monthly_price() -> None:
    cost = running_cost("shared", 1, 512, "iad", SECONDS_PER_MONTH)
    assert cost == Decimal("3.195")
    assert running_cost("performance", 1, 2048, None, 3600) * 730 == Decimal(31)


def test_running_is_billed_per_second_and_scaled_by_the_region() -> None:
    one_second = running_cost("shared", 1, 256, "iad", 1)
    assert one_second == Decimal("1.945") / SECONDS_PER_MONTH
    assert running_cost("shared", 1, 256, "ord", 1) == one_second * Decimal("1.25")


def test_stopped_machines_pay_fifteen_cents_per_gb_per_thirty_days() -> None:
    assert stopped_cost(1, 30 * 86_400) == Decimal("0.15")
    assert stopped_cost(Decimal("2.5"), 86_400) == Decimal("0.0125")


def test_an_unknown_region_is_priced_at_the_dearest_known_multiplier() -> None:
    assert region_multiplier("zzz") == Decimal("1.858")
    assert region_multiplier(None) == Decimal(1)
    assert region_multiplier("ord,iad") == Decimal("1.25")


def test_it_refuses_an_unknown_cpu_kind_and_negative_durations() -> None:
    with pytest.raises(ValueError, match="cpu_kind"):
        monthly_price("gpu", 1, 256)
    with pytest.raises(ValueError, match="negative"):
        stopped_cost(1, -1)


def test_machine_cost_charges_compute_only_while_started_and_storage_otherwise() -> None:
    hour = timedelta(hours=1)
    intervals = [
        (MachineState.STARTING, T0, T0 + timedelta(seconds=2)),
        (MachineState.STARTED, T0 + timedelta(seconds=2), T0 + hour),
        ("suspended", T0 + hour, T0 + 3 * hour),
        (MachineState.DESTROYED, T0 + 3 * hour, T0 + 9 * hour),
    ]
    cost = machine_cost(intervals, cpu_kind="shared", cpus=1, memory_mb=512, region="iad", rootfs_gb=2)
    expected = stopped_cost(2, 2) + running_cost("shared", 1, 512, "iad", 3598) + stopped_cost(2, 7200)
    assert cost == expected
    assert cost.quantize(Decimal("0.00001")) == Decimal("0.00521")
