"""The policy dry-run's core: replay recorded sessions under a candidate policy (pure; time is a parameter).

"What would a 15-minute idle timeout, a 1-hour TTL or one session per user have changed?" Each session's
history is its start, its real end (or ``now`` while it runs), its machine's hourly rate and its per-minute
activity buckets (``SessionActivity``). For each session the core finds the earliest moment a rule of the
policy would have stopped it:

- idle timeout: the first gap between two activities (the start counts as one) longer than the timeout,
  or a tail after the last activity longer than it; the stop is that activity plus the timeout;
- TTL: the start plus the TTL;
- concurrency limit: a session created while the user already had ``limit`` sessions running (under the
  policy, so sessions the policy ends early free their slot sooner) would have been refused: stopped at its
  start.

Buckets are minutes, so the replay rounds in the direction that never understates harm: activity in a
minute counts as at the end of that minute (no stop is placed before an activity), and an edit counts as
"after the stop" when its minute ends after it. Savings count only inside the window ``[since, now]``.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import NamedTuple

MINUTE = timedelta(minutes=1)
HOUR_SECONDS = Decimal(3600)


class Rule:
    IDLE = "idle"
    TTL = "ttl"
    CONCURRENCY = "concurrency"


@dataclass(frozen=True)
class Policy:
    """A candidate policy; None leaves that rule as it is (it stops nothing)."""

    idle_timeout_minutes: int | None = None
    ttl_minutes: int | None = None
    max_concurrent: int | None = None

    @property
    def is_empty(self) -> bool:
        return self.idle_timeout_minutes is None and self.ttl_minutes is None and self.max_concurrent is None


class ActivityMinute(NamedTuple):
    """One minute of a session's activity (a tuple: a 30-day history has hundreds of thousands of them)."""

    at: datetime  # the minute's start
    edits: int = 0
    touches: int = 0

    @property
    def end(self) -> datetime:
        return self.at + MINUTE


@dataclass(frozen=True)
class SessionHistory:
    id: uuid.UUID
    user_id: uuid.UUID
    started_at: datetime
    ended_at: datetime | None  # None: still running
    hourly_cost: Decimal
    minutes: tuple[ActivityMinute, ...] = ()
    end_reason: str = ""


@dataclass(frozen=True)
class Stop:
    """One session the policy would have ended earlier (or refused: ``at`` is its start)."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    rule: str
    at: datetime
    ended_at: datetime  # the real end, or ``now`` while it runs
    saved_seconds: Decimal
    saved_usd: Decimal
    edited_after: bool


@dataclass(frozen=True)
class DaySaving:
    day: date
    dollars_saved: Decimal
    sessions: int


@dataclass(frozen=True)
class DryRunResult:
    policy: Policy
    since: datetime
    now: datetime
    sessions_considered: int
    stops: tuple[Stop, ...] = field(default=())

    @property
    def sessions_ended_earlier(self) -> int:
        return len(self.stops)

    @property
    def machine_hours_saved(self) -> Decimal:
        return sum((stop.saved_seconds for stop in self.stops), Decimal(0)) / HOUR_SECONDS

    @property
    def dollars_saved(self) -> Decimal:
        return sum((stop.saved_usd for stop in self.stops), Decimal(0))

    @property
    def users_affected(self) -> int:
        return len({stop.user_id for stop in self.stops})

    @property
    def sessions_edited_after_stop(self) -> int:
        return sum(1 for stop in self.stops if stop.edited_after)

    @property
    def by_rule(self) -> dict[str, int]:
        counts = dict.fromkeys((Rule.IDLE, Rule.TTL, Rule.CONCURRENCY), 0)
        for stop in self.stops:
            counts[stop.rule] += 1
        return counts

    def largest_stops(self, limit: int = 100) -> list[Stop]:
        """The stops that save the most, largest first (what a report lists)."""
        return sorted(self.stops, key=lambda stop: (-stop.saved_usd, stop.at))[:limit]

    def per_day(self) -> list[DaySaving]:
        """Dollars saved and sessions stopped on every day of the window, by the day of the stop."""
        dollars: dict[date, Decimal] = defaultdict(Decimal)
        counts: dict[date, int] = defaultdict(int)
        for stop in self.stops:
            day = max(stop.at, self.since).date()
            dollars[day] += stop.saved_usd
            counts[day] += 1
        days = (self.now.date() - self.since.date()).days + 1
        return [
            DaySaving(day, dollars[day], counts[day])
            for day in (self.since.date() + timedelta(days=offset) for offset in range(days))
        ]


# --- one session ------------------------------------------------------------------------------------------


def idle_stop(history: SessionHistory, *, end: datetime, timeout: timedelta) -> datetime | None:
    """The first moment ``timeout`` passed with no activity, before ``end``; None when it never did."""
    active = sorted(min(m.end, end) for m in history.minutes if (m.edits or m.touches) and m.at < end)
    points = [history.started_at, *(at for at in active if at > history.started_at), end]
    for last, following in pairwise(points):
        if following - last > timeout:
            return last + timeout
    return None


def ttl_stop(history: SessionHistory, *, end: datetime, ttl: timedelta) -> datetime | None:
    stop = history.started_at + ttl
    return stop if stop < end else None


def edited_after(history: SessionHistory, at: datetime) -> bool:
    """Whether an edit's minute ends after ``at`` (an edit the stop would have cut off, or may have)."""
    return any(m.edits and m.end > at for m in history.minutes)


def _rule_stop(history: SessionHistory, policy: Policy, *, end: datetime) -> tuple[str, datetime] | None:
    found = []
    if policy.idle_timeout_minutes is not None:
        at = idle_stop(history, end=end, timeout=timedelta(minutes=policy.idle_timeout_minutes))
        found += [(at, Rule.IDLE)] if at else []
    if policy.ttl_minutes is not None:
        at = ttl_stop(history, end=end, ttl=timedelta(minutes=policy.ttl_minutes))
        found += [(at, Rule.TTL)] if at else []
    if not found:
        return None
    at, rule = min(found)
    return rule, at


def _stop(history: SessionHistory, rule: str, at: datetime, *, end: datetime, since: datetime) -> Stop | None:
    seconds = Decimal(str((end - max(at, since)).total_seconds()))
    if seconds <= 0:
        return None  # stopped before the window, and ran nothing inside it that the policy saves
    return Stop(
        session_id=history.id,
        user_id=history.user_id,
        rule=rule,
        at=at,
        ended_at=end,
        saved_seconds=seconds,
        saved_usd=history.hourly_cost * seconds / HOUR_SECONDS,
        edited_after=edited_after(history, at),
    )


# --- all sessions -----------------------------------------------------------------------------------------


def dry_run(histories: Iterable[SessionHistory], policy: Policy, *, since: datetime, now: datetime) -> DryRunResult:
    """Replay ``histories`` (sessions that ran at some point in ``[since, now]``) under ``policy``."""
    ordered = sorted(histories, key=lambda h: (h.started_at, str(h.id)))
    running: dict[uuid.UUID, list[datetime]] = defaultdict(list)  # each user's admitted sessions' simulated ends
    stops = []
    for history in ordered:
        end = min(history.ended_at or now, now)
        stop = _replay_one(history, policy, end=end, running=running[history.user_id])
        if stop is not None:
            stops += [s for s in [_stop(history, *stop, end=end, since=since)] if s]
    return DryRunResult(policy=policy, since=since, now=now, sessions_considered=len(ordered), stops=tuple(stops))


def _replay_one(
    history: SessionHistory, policy: Policy, *, end: datetime, running: list[datetime]
) -> tuple[str, datetime] | None:
    """The rule and moment that stops this session (None: nothing does); books its slot in ``running``."""
    if policy.max_concurrent is not None:
        busy = sum(1 for other_end in running if other_end > history.started_at)
        if busy >= policy.max_concurrent:
            return Rule.CONCURRENCY, history.started_at
    stop = _rule_stop(history, policy, end=end)
    running.append(stop[1] if stop else end)
    return stop


def minutes_from_rows(rows: Sequence[tuple[datetime, int, int]]) -> tuple[ActivityMinute, ...]:
    return tuple(ActivityMinute(at=at, edits=edits, touches=touches) for at, edits, touches in rows)
