"""Reports from a machine's agent (``ready``, ``status``, ``heartbeat``, ``activity``, ``exit``) applied to its
session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from machines.models import Machine
from machines.services import machine_preview_url
from sessions.changes import announced_together
from sessions.models import EndReason, PreviewSession
from sessions.selectors import session_of_machine
from sessions.services.lifecycle import session_activate, session_end, session_touch
from sessions.services.liveness import session_record_heartbeat

# Reports that prove the agent alive; the agent watch reads the last one (``AgentHeartbeat``).
LIVENESS_EVENTS = frozenset({"ready", "status", "heartbeat"})


def session_handle_agent_event(*, machine: Machine, event: dict[str, Any], now: datetime) -> str:
    """Apply one report from a machine's agent to its session; returns what happened, for the reply."""
    session = session_of_machine(machine.id)
    if session is None:
        return "no session"
    kind = event["type"]
    if kind == "ready":  # activated first: a create may be waiting to answer `active`; the liveness record can wait
        outcome = _ready(session=session, machine=machine, event=event, now=now)
        session_record_heartbeat(machine=machine, event=event, now=now)
        return outcome
    if kind in LIVENESS_EVENTS:
        recorded = session_record_heartbeat(machine=machine, event=event, now=now)
        if kind == "heartbeat":
            return recorded
    if kind == "activity":
        return (
            "recorded"
            if session_touch(session_id=session.id, source=str(event.get("source") or "agent"), now=now)
            else "throttled"
        )
    if kind == "exit":
        reason = EndReason.IDLE if event.get("reason") == "idle" else EndReason.FAILED
        detail = f"agent exited: {event.get('reason')}"
        ended = session_end(session=session, reason=reason, now=now, detail=detail, source="agent", release_later=True)
        return "ended" if ended else "ignored"
    return "noted"


def _ready(*, session: PreviewSession, machine: Machine, event: dict[str, Any], now: datetime) -> str:
    framework = str(event["framework"])[:32] if event.get("framework") else None
    with announced_together():  # the waiting create is woken first, outside the batch (session_activate)
        activated = session_activate(
            session=session,
            preview_url=machine_preview_url(machine, session),
            boot_timings=event.get("boot_steps") or {},
            now=now,
            framework=framework,
        )
    if not activated and framework is not None:  # a ready again (the agent restarted): what it serves now
        PreviewSession.objects.filter(id=session.id).update(framework=framework)
    return "activated" if activated else "ignored"
