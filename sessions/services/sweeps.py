"""The schedules' writes: expired, idle and stuck sessions end; machines of finished sessions are released.

Safe to run twice and on two instances at once: rows are claimed with a conditional update or
``select_for_update(skip_locked=True)``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.db import transaction

from machines.models import GONE_STATES
from machines.services import machine_destroy
from realtime_bridge import publish
from sessions.changes import session_status_announce
from sessions.models import LIVE_STATUSES, EndReason, PreviewSession, SessionStatus
from sessions.services.lifecycle import session_end
from velocity import metrics

logger = logging.getLogger(__name__)

# A bulk sweep announces at most this many sessions one by one; the rest are visible on the next read.
STATUS_FANOUT_LIMIT = 500


def session_end_expired(*, now: datetime) -> int:
    """End every live session past ``expires_at`` in one conditional update, then release their machines.

    The ``status__in`` condition is the claim: a second sweeper running at the same moment updates
    nothing that the first already ended, so no session is ended twice.
    """
    # The announcements go out together after the commit (publish.batched): one channel-layer message per
    # operator group, one relay request in the embedded mode's cluster, listeners called once.
    with publish.batched(), transaction.atomic():
        count = PreviewSession.objects.filter(status__in=LIVE_STATUSES, expires_at__lt=now).update(
            status=SessionStatus.ENDED, end_reason=EndReason.EXPIRED, ended_at=now, updated_at=now
        )
        if count:
            ended = list(
                PreviewSession.objects.filter(end_reason=EndReason.EXPIRED, ended_at=now)[:STATUS_FANOUT_LIMIT]
            )
            for session in ended:
                session_status_announce(session)
    if count:
        logger.info("expired sessions ended", extra={"count": count})
        metrics.sessions_ended(reason=EndReason.EXPIRED, count=count)
        session_release_finished_machines(source="schedule")
    return count


def session_release_finished_machines(*, source: str) -> int:
    """Destroy machines still running for sessions that have finished (idempotent catch-up)."""
    machine_ids = (
        PreviewSession.objects.exclude(status__in=LIVE_STATUSES)
        .filter(machine__isnull=False)
        .exclude(machine__state__in=GONE_STATES)
        .values_list("machine_id", flat=True)
        .distinct()
    )
    released = 0
    for machine_id in list(machine_ids):
        released += machine_destroy(machine_id=machine_id, source=source, detail={"reason": "session finished"})
    return released


def session_reap_idle(*, now: datetime, idle_timeout: int) -> int:
    """End live sessions idle longer than ``idle_timeout`` seconds.

    Each candidate is locked and its last activity re-read under that lock before the decision, so an
    edit recorded a moment earlier keeps the session alive.
    """
    cutoff = now - timedelta(seconds=idle_timeout)
    candidates = PreviewSession.objects.filter(status__in=LIVE_STATUSES, last_activity_at__lt=cutoff)
    reaped = 0
    for session_id in list(candidates.values_list("id", flat=True)[:1000]):
        if _reap_one(session_id, cutoff=cutoff, now=now):
            reaped += 1
    if reaped:
        session_release_finished_machines(source="schedule")
    return reaped


def _reap_one(session_id: uuid.UUID, *, cutoff: datetime, now: datetime) -> bool:
    with transaction.atomic():
        session = (
            PreviewSession.objects.select_for_update(skip_locked=True)
            .filter(id=session_id, status__in=LIVE_STATUSES)
            .first()
        )
        if session is None or (session.last_activity_at and session.last_activity_at >= cutoff):
            return False
        session.status, session.end_reason = SessionStatus.ENDED, EndReason.IDLE
        session.ended_at = session.updated_at = now
        session.save(update_fields=["status", "end_reason", "ended_at", "updated_at"])
        session_status_announce(session)
    logger.info("idle session ended", extra={"session_id": str(session_id)})
    metrics.sessions_ended(reason=EndReason.IDLE)
    return True


def session_fail_stuck(*, now: datetime, timeout: int) -> int:
    """Fail sessions that stayed ``creating`` longer than ``timeout`` seconds (a lost provisioning)."""
    stuck = PreviewSession.objects.filter(
        status=SessionStatus.CREATING, created_at__lt=now - timedelta(seconds=timeout)
    )
    failed = 0
    for session in list(stuck[:1000]):
        failed += session_end(
            session=session, reason=EndReason.FAILED, now=now, detail="provisioning timed out", source="schedule"
        )
    return failed
