"""The budget check's pure core: a user's month against their cap, the projection, and what to do."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sessions.budgets import BudgetState, budget_decide, month_end

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # ten and a half days before December


def state(spend: str, *, cap: str = "10.00", burn: str = "0") -> BudgetState:
    return BudgetState(cap_usd=Decimal(cap), spend_usd=Decimal(spend), burn_usd_per_hour=Decimal(burn), now=NOW)


def test_the_month_ends_at_the_first_moment_of_the_next_one_even_in_december() -> None:
    assert month_end(NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    assert month_end(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_levels_are_reached_at_exactly_80_95_and_100_percent() -> None:
    assert [state(s).level for s in ("7.99", "8.00", "9.49", "9.50", "9.99", "10.00", "12")] == [
        None,
        80,
        80,
        95,
        95,
        100,
        100,
    ]
    assert state("1.00").percent == Decimal(10)


def test_the_projection_and_time_left_follow_the_current_burn() -> None:
    burning = state("4.00", burn="0.02")
    hours_left = Decimal(10 * 24 + 12)
    assert burning.projected_month_usd == Decimal("4.00") + Decimal("0.02") * hours_left
    assert burning.seconds_left == 300 * 3600  # $6 left at $0.02 an hour
    assert state("11", burn="0.02").seconds_left == 0


def test_nothing_running_projects_the_spend_as_it_is_and_has_no_time_left() -> None:
    idle = state("4.00")
    assert idle.projected_month_usd == Decimal("4.00")
    assert idle.seconds_left is None


def test_a_zero_cap_has_no_percent_and_is_reached_at_once() -> None:
    assert state("0", cap="0").percent is None
    assert state("0", cap="0").level == 100


def test_below_80_percent_nothing_happens() -> None:
    decision = budget_decide(state("7.99"), noticed=set(), live_sessions=2)
    assert (decision.record, decision.announce, decision.end_sessions) == ((), None, False)


def test_each_level_is_announced_once_and_a_jump_announces_only_the_highest() -> None:
    assert budget_decide(state("8"), noticed=set(), live_sessions=1).announce == 80
    assert budget_decide(state("8.5"), noticed={80}, live_sessions=1).announce is None
    jump = budget_decide(state("9.6"), noticed=set(), live_sessions=1)
    assert (jump.record, jump.announce, jump.end_sessions) == ((80, 95), 95, False)


def test_at_the_cap_live_sessions_end_on_every_run_but_the_warning_goes_once() -> None:
    first = budget_decide(state("10"), noticed={80, 95}, live_sessions=1)
    again = budget_decide(state("10.2"), noticed={80, 95, 100}, live_sessions=1)
    assert (first.announce, first.end_sessions) == (100, True)
    assert (again.announce, again.end_sessions) == (None, True)
    assert not budget_decide(state("10.2"), noticed={80, 95, 100}, live_sessions=0).end_sessions


def test_time_is_taken_from_the_state_not_the_clock() -> None:
    later = BudgetState(Decimal(10), Decimal(1), Decimal(1), NOW + timedelta(days=5))
    assert later.projected_month_usd == Decimal(1) + Decimal(5 * 24 + 12)
