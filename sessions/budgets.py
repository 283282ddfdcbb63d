"""Budgets that act, as pure data: what a user has spent this month, where the current burn takes it, and
what the budget check does about it. No database, no clock: ``now`` and the figures come in as arguments.

The figures: ``spend_usd`` is the month-to-date machine cost (exact, from the machines' state intervals,
the running machines' cost up to ``now`` included); ``burn_usd_per_hour`` is what the user's running
machines cost per hour. The projection to the month's end and the time left assume that burn goes on.

The levels are percents of the cap: 80 and 95 warn, 100 ends the user's live sessions (end reason
``budget``). Each level is announced once per user and month; a check that finds several levels crossed
at once (a jump from 70 % to 96 %) records them all and announces only the highest.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

WARNING_LEVELS = (80, 95)
END_LEVEL = 100
LEVELS = (*WARNING_LEVELS, END_LEVEL)
ZERO = Decimal(0)
HOUR_SECONDS = Decimal(3600)


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_end(now: datetime) -> datetime:
    """The first moment of the next month (the end of ``now``'s month, exclusive)."""
    days = calendar.monthrange(now.year, now.month)[1]
    return month_start(now) + timedelta(days=days)


@dataclass(frozen=True)
class BudgetState:
    """One user's month against their cap, at ``now``."""

    cap_usd: Decimal
    spend_usd: Decimal
    burn_usd_per_hour: Decimal
    now: datetime

    @property
    def period_end(self) -> datetime:
        return month_end(self.now)

    @property
    def percent(self) -> Decimal | None:
        """Spend as a percent of the cap; None when the cap is zero (nothing may be spent)."""
        return self.spend_usd * 100 / self.cap_usd if self.cap_usd > 0 else None

    @property
    def level(self) -> int | None:
        """The highest level reached (80, 95, 100), or None below 80 %."""
        reached = [level for level in LEVELS if self.reaches(level)]
        return max(reached, default=None)

    def reaches(self, level: int) -> bool:
        return self.spend_usd * 100 >= self.cap_usd * level

    @property
    def projected_month_usd(self) -> Decimal:
        """The spend at the month's end if the current burn goes on until then."""
        hours_left = Decimal(str((month_end(self.now) - self.now).total_seconds())) / HOUR_SECONDS
        return self.spend_usd + self.burn_usd_per_hour * hours_left

    @property
    def seconds_left(self) -> int | None:
        """Seconds until the cap at the current burn (0 once reached); None when nothing runs."""
        if self.burn_usd_per_hour <= 0:
            return None
        left = max(self.cap_usd - self.spend_usd, ZERO)
        return int(left * HOUR_SECONDS / self.burn_usd_per_hour)


@dataclass(frozen=True)
class BudgetDecision:
    record: tuple[int, ...] = ()  # levels crossed for the first time this month, to remember
    announce: int | None = None  # the level to warn about (the highest new one), or None
    end_sessions: bool = False


def budget_decide(state: BudgetState, *, noticed: set[int], live_sessions: int) -> BudgetDecision:
    """What the check does for one user: which levels to record and announce, and whether to end their live
    sessions (at 100 %, every run while they have any: a session started since is ended too)."""
    new = tuple(level for level in LEVELS if state.reaches(level) and level not in noticed)
    return BudgetDecision(
        record=new,
        announce=max(new, default=None),
        end_sessions=state.reaches(END_LEVEL) and live_sessions > 0,
    )
