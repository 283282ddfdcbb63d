"""The dry-run's core against a small history whose answers were worked out by hand (arithmetic in comments).

The history (now = 2026-03-20 12:00 UTC, window = the 30 days since 2026-02-18 12:00):

- S0, user B, 02-18 11:00 → 13:00 (started before the window), $0.60/h, no activity at all;
- S1, user A, 03-10 10:00 → 11:00, $0.60/h, edits in minutes 10:00 and 10:05, a heartbeat in minute 10:40;
- S2, user A, 03-10 10:30 → 12:30, $1.20/h, an edit every ten minutes from 10:30 to 12:20;
- S5, user A, 03-15 08:00 → 08:10, $0.60/h, an edit in minute 08:05;
- S3, user B, 03-20 11:00 → still running, $0.60/h, edits in minutes 11:02 and 11:50;
- S4, user B, 03-20 11:10 → 11:40, $0.60/h, an edit every five minutes from 11:10 to 11:35.

Activity in a minute counts as at that minute's end (10:05 → 10:06).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sessions.dry_run import ActivityMinute, Policy, Rule, SessionHistory, dry_run, idle_stop

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=30)
USER_A, USER_B = uuid.UUID(int=0xA), uuid.UUID(int=0xB)
IDS = {name: uuid.UUID(int=number) for number, name in enumerate(["S0", "S1", "S2", "S3", "S4", "S5"])}


def at(month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def edits(*moments: datetime) -> tuple[ActivityMinute, ...]:
    return tuple(ActivityMinute(at=moment, edits=1) for moment in moments)


def every(start: datetime, last: datetime, minutes: int) -> list[datetime]:
    count = int((last - start) / timedelta(minutes=minutes)) + 1
    return [start + timedelta(minutes=minutes * step) for step in range(count)]


def history() -> list[SessionHistory]:
    rate, double = Decimal("0.60"), Decimal("1.20")
    s1_minutes = (*edits(at(3, 10, 10, 0), at(3, 10, 10, 5)), ActivityMinute(at=at(3, 10, 10, 40), touches=3))
    return [
        SessionHistory(IDS["S0"], USER_B, at(2, 18, 11, 0), at(2, 18, 13, 0), rate),
        SessionHistory(IDS["S1"], USER_A, at(3, 10, 10, 0), at(3, 10, 11, 0), rate, s1_minutes),
        SessionHistory(
            IDS["S2"],
            USER_A,
            at(3, 10, 10, 30),
            at(3, 10, 12, 30),
            double,
            edits(*every(at(3, 10, 10, 30), at(3, 10, 12, 20), 10)),
        ),
        SessionHistory(IDS["S5"], USER_A, at(3, 15, 8, 0), at(3, 15, 8, 10), rate, edits(at(3, 15, 8, 5))),
        SessionHistory(IDS["S3"], USER_B, at(3, 20, 11, 0), None, rate, edits(at(3, 20, 11, 2), at(3, 20, 11, 50))),
        SessionHistory(
            IDS["S4"],
            USER_B,
            at(3, 20, 11, 10),
            at(3, 20, 11, 40),
            rate,
            edits(*every(at(3, 20, 11, 10), at(3, 20, 11, 35), 5)),
        ),
    ]


def stops_by_name(result: object) -> dict[str, tuple[str, datetime, Decimal, bool]]:
    names = {number: name for name, number in IDS.items()}
    return {
        names[stop.session_id]: (stop.rule, stop.at, stop.saved_usd, stop.edited_after)
        for stop in result.stops  # type: ignore[attr-defined]
    }


def test_an_idle_timeout_stops_at_the_first_gap_longer_than_it() -> None:
    s1 = history()[1]
    # Activity ends at 10:01, 10:06 and 10:41: gaps of 1, 5 and 35 minutes; the 35 is the first over 15.
    assert idle_stop(s1, end=s1.ended_at or NOW, timeout=timedelta(minutes=15)) == at(3, 10, 10, 21)
    # Nothing is over 40 minutes (the tail 10:41 → 11:00 is 19).
    assert idle_stop(s1, end=s1.ended_at or NOW, timeout=timedelta(minutes=40)) is None


def test_the_whole_policy_matches_the_hand_computed_answer() -> None:
    result = dry_run(history(), Policy(idle_timeout_minutes=15, ttl_minutes=60, max_concurrent=1), since=SINCE, now=NOW)

    # S0: idle from its 11:00 start, stop 11:15; only 12:00 (the window's start) → 13:00 counts: 60 min, $0.60.
    # S1: idle stop 10:21 (the 35-minute gap); 10:21 → 11:00 = 39 min = 0.65 h * $0.60 = $0.39; edits end 10:06.
    # S2: S1's slot freed at 10:21 (under the policy), so S2 is admitted at 10:30; no gap over 15 (every 10 min,
    #     tail 12:21 → 12:30 = 9); TTL stops it at 11:30: 60 min * $1.20 = $1.20; the 11:30 edit ends 11:31: after.
    # S5: gaps 6 and 4 minutes, 10 minutes long: nothing stops it.
    # S3: gaps 11:00 → 11:03 → 11:51: idle stop 11:18; running until now: 42 min = 0.7 h * $0.60 = $0.42; the
    #     11:50 edit comes after. The TTL (12:00) is not before its end (now).
    # S4: starts 11:10 while S3 (policy end 11:18) runs: refused at 11:10; all 30 min * $0.60 = $0.30; edited.
    assert stops_by_name(result) == {
        "S0": (Rule.IDLE, at(2, 18, 11, 15), Decimal("0.60"), False),
        "S1": (Rule.IDLE, at(3, 10, 10, 21), Decimal("0.39"), False),
        "S2": (Rule.TTL, at(3, 10, 11, 30), Decimal("1.20"), True),
        "S3": (Rule.IDLE, at(3, 20, 11, 18), Decimal("0.42"), True),
        "S4": (Rule.CONCURRENCY, at(3, 20, 11, 10), Decimal("0.30"), True),
    }
    assert result.sessions_considered == 6
    assert result.sessions_ended_earlier == 5
    assert result.machine_hours_saved == Decimal(60 + 39 + 60 + 42 + 30) / 60  # 231 min = 3.85 h
    assert result.dollars_saved == Decimal("2.91")  # 0.60 + 0.39 + 1.20 + 0.42 + 0.30
    assert result.users_affected == 2
    assert result.sessions_edited_after_stop == 3  # S2, S3, S4
    assert result.by_rule == {Rule.IDLE: 3, Rule.TTL: 1, Rule.CONCURRENCY: 1}


def test_the_days_carry_what_each_stop_saved() -> None:
    result = dry_run(history(), Policy(idle_timeout_minutes=15, ttl_minutes=60, max_concurrent=1), since=SINCE, now=NOW)
    days = {row.day: (row.dollars_saved, row.sessions) for row in result.per_day()}
    # 02-18 → 03-20 is 30 days later (February 2026 has 28): 31 days, the window's first and last included.
    assert len(days) == 31
    assert days[date(2026, 2, 18)] == (Decimal("0.60"), 1)  # S0
    assert days[date(2026, 3, 10)] == (Decimal("1.59"), 2)  # S1 0.39 + S2 1.20
    assert days[date(2026, 3, 20)] == (Decimal("0.72"), 2)  # S3 0.42 + S4 0.30
    assert sum(count for _dollars, count in days.values()) == 5


def test_an_idle_timeout_alone_stops_only_the_quiet_sessions() -> None:
    result = dry_run(history(), Policy(idle_timeout_minutes=15), since=SINCE, now=NOW)
    # S0, S1 and S3 as above; S4 (an edit every 5 min, tail 11:36 → 11:40) and S2 never go quiet 15 minutes.
    assert set(stops_by_name(result)) == {"S0", "S1", "S3"}
    assert result.dollars_saved == Decimal("1.41")  # 0.60 + 0.39 + 0.42
    assert result.machine_hours_saved == Decimal(60 + 39 + 42) / 60  # 141 min = 2.35 h
    assert result.sessions_edited_after_stop == 1  # S3


def test_a_concurrency_limit_alone_refuses_the_second_session_of_a_user() -> None:
    result = dry_run(history(), Policy(max_concurrent=1), since=SINCE, now=NOW)
    # S2 starts 10:30 while S1 runs to 11:00: refused, all 120 min * $1.20 = $2.40.
    # S4 starts 11:10 while S3 runs: refused, 30 min * $0.60 = $0.30. S5 (03-15) overlaps nothing.
    assert stops_by_name(result) == {
        "S2": (Rule.CONCURRENCY, at(3, 10, 10, 30), Decimal("2.40"), True),
        "S4": (Rule.CONCURRENCY, at(3, 20, 11, 10), Decimal("0.30"), True),
    }
    assert result.machine_hours_saved == Decimal("2.5")  # 150 min
    assert result.users_affected == 2


def test_a_ttl_longer_than_every_session_changes_nothing() -> None:
    result = dry_run(history(), Policy(ttl_minutes=180), since=SINCE, now=NOW)
    assert result.stops == ()
    assert result.dollars_saved == 0
    assert result.sessions_considered == 6
