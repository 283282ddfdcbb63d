"""A session's life after its creation: activated by its agent, touched by activity, ended (its machine
released)."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django_q.tasks import async_task

from machines.services import machine_destroy
from sessions import wakeups
from sessions.changes import session_status_announce, sessions_announce
from sessions.models import LIVE_STATUSES, EndReason, PreviewSession, SessionStatus
from sessions.services.activity import activity_touch
from velocity import metrics

logger = logging.getLogger(__name__)

ACTIVITY_WRITE_INTERVAL = timedelta(seconds=5)
# Reasons that end a session ``failed`` rather than ``ended``.
FAILURE_REASONS = frozenset({EndReason.FAILED, EndReason.AGENT_UNRESPONSIVE})


def session_activate(
    *,
    session: PreviewSession,
    preview_url: str,
    boot_timings: dict[str, Any],
    now: datetime,
    framework: str | None = None,
) -> bool:
    """``creating`` → ``active`` once the agent is ready (with the ``framework`` it detected, if it says); False
    when the session was ended meanwhile."""
    detected = {} if framework is None else {"framework": framework}
    updated = PreviewSession.objects.filter(id=session.id, status=SessionStatus.CREATING).update(
        **detected,
        status=SessionStatus.ACTIVE,
        preview_url=preview_url,
        started_at=now,
        agent_ready_at=now,
        boot_timings=boot_timings,
        updated_at=now,
        last_activity_at=now,
        last_activity_source="agent",
    )
    if updated:
        # First of the commit's actions: a create waiting to answer `active` wakes before the announcements'
        # channel-layer and webhook round trips, which it does not need.
        transaction.on_commit(lambda: wakeups.ready_wake(session.id))
        session.refresh_from_db()
        session_status_announce(session)
        metrics.session_activated(created_at=session.created_at, now=now)
    return bool(updated)


def session_mark_step(*, session_id: uuid.UUID, step: str, now: datetime) -> None:
    """Record one waterfall step (``machine_created_at``, ``machine_started_at``) the first time it happens."""
    PreviewSession.objects.filter(id=session_id, **{f"{step}__isnull": True}).update(**{step: now, "updated_at": now})


def session_touch(*, session_id: uuid.UUID, source: str, now: datetime) -> bool:
    """Record activity, at most once per ``ACTIVITY_WRITE_INTERVAL`` per session (a cheap conditional update);
    every call also counts in the session's activity minutes (in memory, written in bulk: the dry-run's history)."""
    activity_touch(session_id=session_id, at=now)
    stale = Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=now - ACTIVITY_WRITE_INTERVAL)
    return bool(
        PreviewSession.objects.filter(stale, id=session_id, status__in=LIVE_STATUSES).update(
            last_activity_at=now, last_activity_source=source, updated_at=now
        )
    )


def session_end(
    *,
    session: PreviewSession,
    reason: str,
    now: datetime,
    detail: str = "",
    source: str = "api",
    release_later: bool = False,
) -> bool:
    """End a live session (``failed`` when the reason is a failure, ``FAILURE_REASONS``) and destroy its machine.

    ``release_later`` destroys the machine in the task cluster instead of now: for callers that are the
    machine itself (its agent's exit report), which must not wait on their own destruction.
    Ending a finished session changes nothing and returns False.
    """
    status = SessionStatus.FAILED if reason in FAILURE_REASONS else SessionStatus.ENDED
    with transaction.atomic():
        updated = PreviewSession.objects.filter(id=session.id, status__in=LIVE_STATUSES).update(
            status=status, end_reason=reason, end_detail=detail[:500], ended_at=now, updated_at=now
        )
        session.refresh_from_db()
        if updated:
            session_status_announce(session)
    if updated:
        logger.info("session ended", extra={"session_id": str(session.id), "reason": reason})
        metrics.sessions_ended(reason=reason)
        if release_later:
            _release_machine_later(session, source=source, reason=reason)
        else:
            _release_machine(session, source=source, reason=reason)
    return bool(updated)


def session_end_for_machines(
    *, machine_ids: list[uuid.UUID], reason: str, now: datetime, source: str, detail: str = ""
) -> int:
    """End every live session running on these machines (an operator's kill, a machine gone or failed)."""
    live = PreviewSession.objects.filter(machine_id__in=machine_ids, status__in=LIVE_STATUSES)
    return sum(
        session_end(session=session, reason=reason, now=now, detail=detail, source=source) for session in list(live)
    )


def on_machines_lost(
    sender: Any, *, machine_ids: list[uuid.UUID], reason: str, now: datetime, source: str, detail: str, **kwargs: Any
) -> int:
    """The ``machines_lost`` receiver (an adapter): their sessions end."""
    return session_end_for_machines(machine_ids=machine_ids, reason=reason, now=now, source=source, detail=detail)


def _release_machine(session: PreviewSession, *, source: str, reason: str) -> None:
    if session.machine_id is not None:
        machine_destroy(machine_id=session.machine_id, source=source, detail={"session_end_reason": reason})


def _release_machine_later(session: PreviewSession, *, source: str, reason: str) -> None:
    if session.machine_id is not None:
        async_task(
            machine_destroy,
            machine_id=session.machine_id,
            source=source,
            detail={"session_end_reason": reason},
            task_name=f"release-{session.machine_id}",
        )


def sessions_delete_finished(*, session_ids: list[uuid.UUID]) -> int:
    """Delete finished sessions (a live one must be ended first); each deletion is announced as a DELETE."""
    with transaction.atomic():
        finished = list(
            PreviewSession.objects.select_for_update().filter(id__in=session_ids).exclude(status__in=LIVE_STATUSES)
        )
        sessions_announce(finished, "DELETE")
        PreviewSession.objects.filter(id__in=[session.id for session in finished]).delete()
    logger.info("finished sessions deleted", extra={"count": len(finished)})
    return len(finished)
