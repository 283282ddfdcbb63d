"""``user_cost``: a machine's cost to its session's user in a window, the budget check's fast path, equals the
user's share of the day slices the rollups use."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from machines.pricing import running_cost
from machines.usage import MachineUsage, usage_slices, user_cost

T0 = datetime(2026, 11, 9, 22, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def usage(**kw: object) -> MachineUsage:
    intervals = [
        ("created", T0, T0 + timedelta(seconds=30)),
        ("started", T0 + timedelta(seconds=30), T0 + 5 * HOUR),  # across midnight
        ("stopped", T0 + 5 * HOUR, T0 + 6 * HOUR),
    ]
    defaults: dict[str, object] = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 1024, "region": "fra"}
    return MachineUsage(intervals=intervals, **{**defaults, **kw})  # type: ignore[arg-type]


def users_slices(machine: MachineUsage, start: datetime, end: datetime) -> Decimal:
    return sum(
        (s.cost for s in usage_slices(machine, start=start, end=end) if s.user_id == machine.user_id), Decimal(0)
    )


def same(a: Decimal, b: Decimal) -> bool:
    """Equal but for the 28th significant digit (a sum of day slices rounds once per slice)."""
    return abs(a - b) < Decimal("1e-20")


def test_a_claimed_warm_machine_costs_its_user_only_from_the_claim() -> None:
    claimed = usage(user_id="u", busy_from=T0 + HOUR, busy_until=T0 + 4 * HOUR)
    window = (T0 - HOUR, T0 + 7 * HOUR)
    assert same(user_cost(claimed, start=window[0], end=window[1]), users_slices(claimed, *window))
    assert user_cost(claimed, start=window[0], end=window[1]) > 0


def test_a_window_that_cuts_the_machines_life_counts_only_its_part() -> None:
    machine = usage(user_id="u", busy_from=T0)
    month_start = datetime(2026, 11, 10, tzinfo=UTC)  # midnight, 2 h after creation
    assert same(
        user_cost(machine, start=month_start, end=T0 + 3 * HOUR), users_slices(machine, month_start, T0 + 3 * HOUR)
    )


def test_intervals_outside_the_window_cost_nothing_in_it() -> None:
    """Before the fix an interval ending before the window (or starting after it) was clipped into the gap
    between the two, inverted, and billed: a stopped hour at 03:00 cost storage in a window ending at 01:00."""
    machine = usage(user_id="u", busy_from=T0)
    window = (datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 10, 1, tzinfo=UTC))  # started throughout
    slices = list(usage_slices(machine, start=window[0], end=window[1]))
    assert [(s.started_seconds, s.idle_seconds) for s in slices] == [(Decimal(3600), Decimal(0))]
    assert same(users_slices(machine, *window), running_cost("shared", 1, 1024, "fra", 3600))


def test_a_machine_nobody_claimed_costs_no_user_anything() -> None:
    assert user_cost(usage(), start=T0, end=T0 + 6 * HOUR) == 0
