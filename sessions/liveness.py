"""The agent watch's judgement: a live session's facts in, one verdict out. Pure: no database, time given.

Two signals decide: heartbeats (the agent reaches the orchestrator every ``AGENT_HEARTBEAT_SECONDS``) and the
probe (the orchestrator reaches the agent's ``/health`` within ``AGENT_PROBE_TIMEOUT_SECONDS``). One failing is
a warning (``degraded``): a network hiccup or a busy agent. Both failing means the agent is hung or gone, and
only a restart helps; after ``restart_limit`` restarts without recovery the session fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from machines.agent_probe import Probe
from sessions.selectors import SyncBacklog


class Action(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    RESTART = "restart"
    FAIL = "fail"
    WAIT = "wait"  # a restart is under way: judge again after its grace


@dataclass(frozen=True)
class Limits:
    stale: timedelta
    restart_limit: int
    restart_grace: timedelta
    sync_stall: timedelta


@dataclass(frozen=True)
class Facts:
    seen_at: datetime | None  # the last heartbeat (or other report) of the agent; None: never since activation
    active_since: datetime  # when the session became active: the clock for an agent never heard from
    probe: Probe | None  # None: not probed this round (no address yet)
    joined: bool | None
    restarts: int  # since the agent was last healthy
    restarted_at: datetime | None
    sync_backlog: SyncBacklog | None = None  # the kept file-sync events' unanswered updates


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str = ""


def judge(facts: Facts, *, limits: Limits, now: datetime) -> Verdict:
    """What to do about one live session's agent now."""
    restarted = facts.restarted_at
    if restarted is not None and _in_grace(facts.seen_at, restarted, limits, now):
        return Verdict(Action.WAIT, f"restarted {_seconds(now - restarted)} ago; waiting for the agent")
    silent = _silence(facts, now)
    probe = facts.probe
    if silent > limits.stale and (probe is None or not probe.ok):
        return _unresponsive(facts, limits, f"no heartbeat for {_seconds(silent)}{_probe_text(probe)}")
    if silent > limits.stale:
        return Verdict(Action.DEGRADED, f"no heartbeat for {_seconds(silent)}, though /health answers")
    if probe is not None and not probe.ok:
        return Verdict(Action.DEGRADED, f"/health did not answer ({probe.error})")
    return _warnings(facts, limits, now)


def _warnings(facts: Facts, limits: Limits, now: datetime) -> Verdict:
    if facts.joined is False:
        return Verdict(Action.DEGRADED, "the agent is not joined on its project's channel")
    backlog = facts.sync_backlog
    if backlog is not None and backlog.oldest_at is not None and now - backlog.oldest_at > limits.sync_stall:
        return Verdict(
            Action.DEGRADED, f"{backlog.count} file update(s) unacknowledged for {_seconds(now - backlog.oldest_at)}"
        )
    return Verdict(Action.OK)


def _unresponsive(facts: Facts, limits: Limits, reason: str) -> Verdict:
    if facts.restarts >= limits.restart_limit:
        return Verdict(Action.FAIL, f"{reason}; still after {facts.restarts} restart(s)")
    return Verdict(Action.RESTART, reason)


def _in_grace(seen_at: datetime | None, restarted_at: datetime, limits: Limits, now: datetime) -> bool:
    """A restarted agent boots for a while; once it reports again, it is judged like any other."""
    if now - restarted_at >= limits.restart_grace:
        return False
    return seen_at is None or seen_at <= restarted_at


def _silence(facts: Facts, now: datetime) -> timedelta:
    """How long since the agent was last heard from (since the latest restart or activation at most)."""
    since = [t for t in (facts.seen_at, facts.restarted_at, facts.active_since) if t is not None]
    return now - max(since)


def _probe_text(probe: Probe | None) -> str:
    return "" if probe is None else f" and /health did not answer ({probe.error})"


def _seconds(delta: timedelta) -> str:
    return f"{max(0, round(delta.total_seconds()))} s"
