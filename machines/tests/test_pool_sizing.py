"""The pool's target as arithmetic: demand x time to provision, held between floor and ceiling, capped by budget."""

from decimal import Decimal

import pytest

from machines.pool_sizing import PoolDemand, PoolPolicy, budget_cap, hit_rate, pool_target, surplus_to_destroy

CENTS = Decimal("0.01")


def policy(floor: int = 1, ceiling: int = 10, budget: str | None = None, headroom: float = 0.5) -> PoolPolicy:
    return PoolPolicy(floor, ceiling, Decimal(budget) if budget else None, CENTS, headroom)


def demand(burst: int = 0, window: int = 0, provision: float = 5.0) -> PoolDemand:
    return PoolDemand(burst, 20, window, 300, provision)


def test_a_quiet_pool_sits_at_its_floor() -> None:
    target = pool_target(demand(), policy(floor=2))
    assert (target.size, target.wanted, target.reason) == (2, 0, "floor")


def test_a_burst_asks_for_the_creates_that_arrive_while_machines_provision() -> None:
    # 12 creates in 20 s = 36/min; 5 s to provision -> 3 machines in flight, 4.5 with 50 % headroom -> 5
    target = pool_target(demand(burst=12, window=12), policy())
    assert (target.size, target.reason, target.hourly_cost) == (5, "demand", Decimal("0.05"))


def test_the_long_window_holds_demand_after_the_burst_has_left_the_short_one() -> None:
    assert demand(burst=0, window=60).per_minute == 12
    assert pool_target(demand(burst=0, window=60, provision=10), policy(floor=0)).size == 3


def test_the_ceiling_bounds_demand_and_the_budget_bounds_even_the_floor() -> None:
    assert pool_target(demand(burst=100), policy(ceiling=6)).reason == "ceiling"
    capped = pool_target(demand(burst=100), policy(floor=4, budget="0.035"))
    assert (capped.size, capped.reason, capped.budget_cap) == (3, "budget", 3)
    assert capped.hourly_cost <= Decimal("0.035")


def test_a_zero_budget_allows_no_pool_and_no_budget_no_cap() -> None:
    assert pool_target(demand(burst=100), policy(budget="0")).size == 0
    assert budget_cap(policy()) is None


@pytest.mark.parametrize(
    ("floor", "ceiling", "budget", "headroom"),
    [(-1, 2, None, 0.5), (3, 2, None, 0.5), (0, 2, "-1", 0.5), (0, 2, None, -1)],
)
def test_contradictory_settings_are_refused_with_a_reason(
    floor: int, ceiling: int, budget: str | None, headroom: float
) -> None:
    with pytest.raises(ValueError, match="pool"):
        policy(floor, ceiling, budget, headroom)


def test_shrinking_destroys_the_oldest_surplus_but_spares_young_machines() -> None:
    ages = [900.0, 600.0, 200.0, 10.0]  # oldest first
    assert surplus_to_destroy(ages, target=1, min_age_seconds=300) == [0, 1]
    assert surplus_to_destroy(ages, target=3, min_age_seconds=300) == [0]
    assert surplus_to_destroy(ages, target=4, min_age_seconds=0) == []


def test_past_the_budget_even_young_machines_go() -> None:
    ages = [100.0, 50.0, 10.0]
    assert surplus_to_destroy(ages, target=1, min_age_seconds=300, hard_limit=1) == [0, 1]
    assert surplus_to_destroy(ages, target=0, min_age_seconds=60, hard_limit=2) == [0]  # the rest are young


def test_the_hit_rate_is_warm_claims_over_creates() -> None:
    assert hit_rate(warm=27, creates=30) == 0.9
    assert hit_rate(warm=0, creates=0) is None
