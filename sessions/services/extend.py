"""The owner pushes a live session's ``expires_at`` out ("keep my preview"), never past the quota's session
length (``max_session_seconds``, counted from the session's creation), nor past the life of its agent's realtime
key (``PREVIEW_SESSION_TTL`` + 1 h: the agent would lose its channel)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.db import transaction

from machines.services import machine_key_seconds
from sessions.changes import sessions_announce
from sessions.models import LIVE_STATUSES, PreviewSession
from sessions.selectors import quota_for_user
from velocity.audit import audit


class SessionNotLive(Exception):
    """The session has ended (or failed): there is nothing to extend."""


class ExtendPastCap(Exception):
    """The new ``expires_at`` would pass the quota's session length; ``latest`` is the most it may be."""

    def __init__(self, *, requested: datetime, latest: datetime, limit_seconds: int) -> None:
        super().__init__("the session would outlast its quota's session length")
        self.requested, self.latest, self.limit_seconds = requested, latest, limit_seconds


def extend_target(
    *, expires_at: datetime | None, created_at: datetime, now: datetime, minutes: int, max_seconds: int
) -> datetime:
    """The new ``expires_at``: ``minutes`` past the current one (or past ``now`` when that is later); raises
    ``ExtendPastCap`` past ``created_at + max_seconds``."""
    requested = max(expires_at or now, now) + timedelta(minutes=minutes)
    latest = created_at + timedelta(seconds=max_seconds)
    if requested > latest:
        raise ExtendPastCap(requested=requested, latest=latest, limit_seconds=max_seconds)
    return requested


def session_extend(*, session_id: uuid.UUID, minutes: int, now: datetime, actor_label: str) -> PreviewSession:
    """Extend a live session by ``minutes`` under its row lock, count it as the user's activity, announce the
    row after commit and audit it (``session.extend``, by ``actor_label``: ``user:<id>`` or the service role)."""
    with transaction.atomic():
        session = PreviewSession.objects.select_for_update().get(id=session_id)
        if session.status not in LIVE_STATUSES:
            raise SessionNotLive(str(session.id))
        before = {"expires_at": _iso(session.expires_at)}
        session.expires_at = extend_target(
            expires_at=session.expires_at,
            created_at=session.created_at,
            now=now,
            minutes=minutes,
            max_seconds=min(quota_for_user(session.user_id).max_session_seconds, machine_key_seconds()),
        )
        session.last_activity_at, session.last_activity_source, session.updated_at = now, "extend", now
        session.save(update_fields=["expires_at", "last_activity_at", "last_activity_source", "updated_at"])
        sessions_announce([session])
        after = {"expires_at": _iso(session.expires_at), "minutes": minutes}
        audit(actor=None, actor_label=actor_label, action="session.extend", target=session, before=before, after=after)
    return session


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
