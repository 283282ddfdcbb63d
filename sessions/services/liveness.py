"""Agent liveness: the agent's heartbeats recorded, and the agent watch's verdicts applied to sessions.

A verdict (``sessions.liveness.judge``) becomes at most one announced write: ``health`` changes (``ok`` ↔
``degraded``, with the reason), a restart of the machine (counted), or the end of the session (``failed``,
``agent_unresponsive``). A reason that only changes its numbers ("no heartbeat for 17 s", then 19 s) is not
written again, so a degraded session does not flood the operators and the user's channel.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from machines.agent_probe import Probe, agent_base_url, probe_agents
from machines.models import EventSource, Machine
from machines.services import machine_restart
from realtime_bridge import events, publish
from sessions.changes import sessions_announce
from sessions.liveness import Action, Facts, Limits, Verdict, judge
from sessions.models import AgentHeartbeat, EndReason, PreviewSession, SessionHealth, SessionStatus
from sessions.selectors import (
    SyncBacklog,
    session_assigned_to_machine,
    session_heartbeat,
    sessions_to_watch,
    sync_backlogs,
)
from sessions.services.lifecycle import session_end
from velocity import metrics

logger = logging.getLogger(__name__)

# The agent's status keys kept with its heartbeat (what the dashboard shows; the ratios feed /metrics).
STATUS_KEYS = ("devServer", "devServerState", "fileCount", "uptime", "cpuRatio", "memoryRatio")
# Given session ids and the moment, each one's unacknowledged file updates (count, since when).
BacklogReader = Callable[[list[uuid.UUID], datetime], Mapping[uuid.UUID, SyncBacklog]]


def sync_backlogs_read(session_ids: list[uuid.UUID], now: datetime) -> Mapping[uuid.UUID, SyncBacklog]:
    """The default ``BacklogReader``: the sessions' kept file-sync events (``sync_backlogs``), in one query."""
    return sync_backlogs(session_ids, now=now)


def limits_from_settings() -> Limits:
    return Limits(
        stale=timedelta(seconds=settings.AGENT_STALE_SECONDS),
        restart_limit=settings.AGENT_RESTART_LIMIT,
        restart_grace=timedelta(seconds=settings.AGENT_RESTART_GRACE_SECONDS),
        sync_stall=timedelta(seconds=settings.AGENT_SYNC_STALL_SECONDS),
    )


def session_record_heartbeat(*, machine: Machine, event: dict[str, Any], now: datetime) -> str:
    """Remember that the machine's agent reported (a ``heartbeat``, ``status`` or ``ready``), with what it said.

    Only a heartbeat says whether the agent is joined (it leaves ``supabaseConnected`` out when it has no realtime
    to join). The session is found from the machine's own token, never from the body: a machine speaks only for
    itself.
    """
    session = session_assigned_to_machine(machine.id)
    if session is None:
        return "no session"
    defaults: dict[str, Any] = {"seen_at": now}
    if event["type"] == "heartbeat" and "supabaseConnected" in event:
        defaults["joined"] = bool(event["supabaseConnected"])
    status = {key: event[key] for key in STATUS_KEYS if key in event}
    if status:
        defaults["status"] = status
    _heartbeat_save(session.id, defaults)
    return "recorded"


def _heartbeat_save(session_id: uuid.UUID, values: dict[str, Any]) -> None:
    """One UPDATE on every beat but the first (no transaction held open between a read and a write)."""
    if AgentHeartbeat.objects.filter(session_id=session_id).update(**values):
        return
    try:
        with transaction.atomic():
            AgentHeartbeat.objects.create(session_id=session_id, **values)
    except IntegrityError:  # a concurrent first beat won: this one updates it
        AgentHeartbeat.objects.filter(session_id=session_id).update(**values)


def agents_watch(
    *, backlog: BacklogReader = sync_backlogs_read, now: Callable[[], datetime] = timezone.now
) -> dict[str, int]:
    """One round of the agent watch: probe every active session's agent at once, judge each, act.

    Returns how many sessions got each verdict (for the command's log line).
    """
    sessions = sessions_to_watch()
    urls = {s.id: url for s in sessions if s.machine is not None and (url := agent_base_url(s.machine))}
    probes = probe_agents(
        urls, timeout=settings.AGENT_PROBE_TIMEOUT_SECONDS, concurrency=settings.AGENT_PROBE_CONCURRENCY
    )
    limits, moment = limits_from_settings(), now()  # judged after the probes: their timeouts have passed
    backlogs = backlog([s.id for s in sessions], moment) if sessions else {}
    counts: dict[str, int] = {}
    for session in sessions:
        verdict = judge(_facts(session, probes.get(session.id), backlogs.get(session.id)), limits=limits, now=moment)
        session_apply_verdict(session=session, verdict=verdict, now=moment)
        counts[verdict.action] = counts.get(verdict.action, 0) + 1
    return counts


def _facts(session: PreviewSession, probe: Probe | None, backlog: SyncBacklog | None) -> Facts:
    heartbeat = session_heartbeat(session)
    return Facts(
        seen_at=heartbeat.seen_at if heartbeat else None,
        active_since=session.agent_ready_at or session.started_at or session.created_at,
        probe=probe,
        joined=heartbeat.joined if heartbeat else None,
        restarts=session.agent_restart_streak,
        restarted_at=session.agent_restarted_at,
        sync_backlog=backlog,
    )


def session_apply_verdict(*, session: PreviewSession, verdict: Verdict, now: datetime) -> bool:
    """Act on one verdict; True when something was written."""
    if verdict.action == Action.OK:
        return session_set_health(session=session, health=SessionHealth.OK, detail="", action=verdict.action, now=now)
    if verdict.action == Action.DEGRADED:
        return session_set_health(
            session=session, health=SessionHealth.DEGRADED, detail=verdict.reason, action=verdict.action, now=now
        )
    if verdict.action == Action.RESTART:
        return session_restart_agent(session=session, reason=verdict.reason, now=now)
    if verdict.action == Action.FAIL:
        return session_fail_unresponsive(session=session, reason=verdict.reason, now=now)
    return False  # WAIT: a restart is under way


def session_set_health(*, session: PreviewSession, health: str, detail: str, action: str, now: datetime) -> bool:
    """Record a new health (and reason) on a live session, announced; the same health and reason is no write."""
    if session.health == health and _shape(session.health_detail) == _shape(detail):
        return False
    changes: dict[str, Any] = {"health": health, "health_detail": detail[:300], "updated_at": now}
    if session.health != health:
        changes["health_changed_at"] = now
    if health == SessionHealth.OK:
        changes["agent_restart_streak"] = 0  # recovered: the next hang gets its restarts again
    return _write_health(session, changes, action=action)


def session_restart_agent(*, session: PreviewSession, reason: str, now: datetime) -> bool:
    """Restart the session's machine (its agent is hung) and count it; one watcher wins a racing restart."""
    detail = f"restarting the machine: {reason}"
    changes: dict[str, Any] = {
        "health": SessionHealth.DEGRADED,
        "health_detail": detail[:300],
        "agent_restarts": F("agent_restarts") + 1,
        "agent_restart_streak": F("agent_restart_streak") + 1,
        "agent_restarted_at": now,
        "updated_at": now,
    }
    if session.health != SessionHealth.DEGRADED:
        changes["health_changed_at"] = now
    if not _write_health(session, changes, action=Action.RESTART, expect_streak=session.agent_restart_streak):
        return False
    restarted = session.machine_id is not None and machine_restart(
        machine_id=session.machine_id, source=EventSource.SCHEDULE, reason=reason, now=now
    )
    logger.warning(
        "agent unresponsive; machine restarted",
        extra={"session_id": str(session.id), "reason": reason, "restarted": restarted},
    )
    return True


def session_fail_unresponsive(*, session: PreviewSession, reason: str, now: datetime) -> bool:
    """The restarts did not help: end the session ``failed`` (``agent_unresponsive``); its machine is destroyed."""
    ended = session_end(
        session=session, reason=EndReason.AGENT_UNRESPONSIVE, now=now, detail=reason, source=EventSource.SCHEDULE
    )
    if ended:
        publish.publish_on_commit(_health_event(session, action=Action.FAIL))
        metrics.agent_verdict(action=Action.FAIL)
        logger.warning("agent unresponsive; session failed", extra={"session_id": str(session.id), "reason": reason})
    return ended


def _write_health(
    session: PreviewSession, changes: dict[str, Any], *, action: str, expect_streak: int | None = None
) -> bool:
    """A conditional update (still active; for a restart, nobody restarted it meanwhile), announced on commit."""
    rows = PreviewSession.objects.filter(id=session.id, status=SessionStatus.ACTIVE)
    if expect_streak is not None:
        rows = rows.filter(agent_restart_streak=expect_streak)
    with transaction.atomic():
        if not rows.update(**changes):
            return False
        session.refresh_from_db()
        sessions_announce([session])
        publish.publish_on_commit(_health_event(session, action=action))
    logger.info("session health", extra={"session_id": str(session.id), "health": session.health, "action": action})
    metrics.agent_verdict(action=str(action))
    return True


def _health_event(session: PreviewSession, *, action: str) -> events.Event:
    return events.session_health(
        session_id=str(session.id),
        project_id=session.project_id,
        health=session.health,
        detail=session.health_detail or session.end_detail,
        action=str(action),
    )


def _shape(detail: str) -> str:
    """A reason without its numbers: "no heartbeat for 17 s" and "... for 19 s" say the same thing."""
    return re.sub(r"\d+", "#", detail)
