"""Writes with side effects on preview sessions."""

from __future__ import annotations

import logging
from datetime import datetime

from sessions.models import LIVE_STATUSES, EndReason, PreviewSession, SessionStatus

logger = logging.getLogger(__name__)


def session_end_expired(*, now: datetime) -> int:
    """End every live session past ``expires_at`` in one conditional update; returns how many it ended.

    The ``status__in`` condition is the claim: a second sweeper running at the same moment updates
    nothing that the first already ended, so no session is ended twice.
    """
    count = PreviewSession.objects.filter(status__in=LIVE_STATUSES, expires_at__lt=now).update(
        status=SessionStatus.ENDED, end_reason=EndReason.EXPIRED, ended_at=now, updated_at=now
    )
    if count:
        logger.info("expired sessions ended", extra={"count": count})
    return count
