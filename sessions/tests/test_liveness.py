"""The agent watch's judgement (``sessions.liveness.judge``): facts in, a verdict out, time given."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from machines.agent_probe import Probe
from sessions.liveness import Action, Facts, Limits, judge
from sessions.selectors import SyncBacklog

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LIMITS = Limits(
    stale=timedelta(seconds=15),
    restart_limit=2,
    restart_grace=timedelta(seconds=45),
    sync_stall=timedelta(seconds=10),
)
TIMEOUT = Probe(ok=False, error="no answer within 2 s")


def facts(**changes: object) -> Facts:
    healthy = Facts(
        seen_at=NOW - timedelta(seconds=3),
        active_since=NOW - timedelta(minutes=5),
        probe=Probe(ok=True),
        joined=True,
        restarts=0,
        restarted_at=None,
    )
    return replace(healthy, **changes)  # type: ignore[arg-type]


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_a_fresh_heartbeat_and_an_answering_probe_are_ok() -> None:
    assert judge(facts(), limits=LIMITS, now=NOW).action == Action.OK


def test_a_probe_that_times_out_alone_is_a_warning_with_its_reason() -> None:
    verdict = judge(facts(probe=TIMEOUT), limits=LIMITS, now=NOW)
    assert verdict.action == Action.DEGRADED
    assert verdict.reason == "/health did not answer (no answer within 2 s)"


def test_silence_alone_is_a_warning_while_health_answers() -> None:
    verdict = judge(facts(seen_at=ago(20)), limits=LIMITS, now=NOW)
    assert verdict.action == Action.DEGRADED
    assert verdict.reason == "no heartbeat for 20 s, though /health answers"


def test_silence_and_no_answer_restart_the_machine() -> None:
    verdict = judge(facts(seen_at=ago(16), probe=TIMEOUT), limits=LIMITS, now=NOW)
    assert verdict.action == Action.RESTART
    assert verdict.reason == "no heartbeat for 16 s and /health did not answer (no answer within 2 s)"


def test_an_agent_never_heard_from_is_timed_from_its_activation() -> None:
    assert judge(facts(seen_at=None, active_since=ago(5), probe=TIMEOUT), limits=LIMITS, now=NOW).action == (
        Action.DEGRADED
    )
    assert judge(facts(seen_at=None, active_since=ago(30), probe=TIMEOUT), limits=LIMITS, now=NOW).action == (
        Action.RESTART
    )


def test_a_restarted_agent_is_left_alone_during_the_grace() -> None:
    verdict = judge(facts(seen_at=ago(40), probe=TIMEOUT, restarts=1, restarted_at=ago(20)), limits=LIMITS, now=NOW)
    assert verdict.action == Action.WAIT
    assert verdict.reason == "restarted 20 s ago; waiting for the agent"


def test_a_restarted_agent_that_reports_again_is_judged_at_once() -> None:
    back = facts(seen_at=ago(1), restarts=1, restarted_at=ago(20))
    assert judge(back, limits=LIMITS, now=NOW).action == Action.OK


def test_a_restarted_agent_silent_past_the_grace_is_restarted_again() -> None:
    verdict = judge(facts(seen_at=ago(80), probe=TIMEOUT, restarts=1, restarted_at=ago(46)), limits=LIMITS, now=NOW)
    assert verdict.action == Action.RESTART
    assert verdict.reason.startswith("no heartbeat for 46 s")  # counted from the restart, not the last beat


def test_the_restart_limit_ends_in_failure() -> None:
    verdict = judge(facts(seen_at=ago(80), probe=TIMEOUT, restarts=2, restarted_at=ago(50)), limits=LIMITS, now=NOW)
    assert verdict.action == Action.FAIL
    assert verdict.reason.endswith("still after 2 restart(s)")


def test_an_agent_not_joined_on_its_channel_is_a_warning() -> None:
    verdict = judge(facts(joined=False), limits=LIMITS, now=NOW)
    assert (verdict.action, verdict.reason) == (Action.DEGRADED, "the agent is not joined on its project's channel")
    assert judge(facts(joined=None), limits=LIMITS, now=NOW).action == Action.OK  # it has not said yet


def test_unacknowledged_file_updates_past_the_stall_are_a_warning() -> None:
    stuck = SyncBacklog(count=3, oldest_at=ago(12))
    verdict = judge(facts(sync_backlog=stuck), limits=LIMITS, now=NOW)
    assert (verdict.action, verdict.reason) == (Action.DEGRADED, "3 file update(s) unacknowledged for 12 s")
    recent = SyncBacklog(count=3, oldest_at=ago(2))
    assert judge(facts(sync_backlog=recent), limits=LIMITS, now=NOW).action == Action.OK


def test_no_probe_with_silence_counts_as_unresponsive() -> None:
    assert judge(facts(seen_at=ago(30), probe=None), limits=LIMITS, now=NOW).action == Action.RESTART
