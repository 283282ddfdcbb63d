"""Each session's activity per minute (``SessionActivity``), the history the policy dry-run replays.

Two sources feed it: every ``file:update`` / ``file:delete`` broadcast on ``project:{id}`` (``activity_observe``,
registered with ``realtime_bridge.observers``: an edit) and every ``session_touch`` (a heartbeat or an agent
activity report). Both only add to an in-memory tally keyed by (session or project, minute): an editor typing
for a minute makes one counter, not one write per keystroke, and the observer never waits on the database.
A background thread writes the tally every ``SESSION_ACTIVITY_FLUSH_SECONDS`` with one additive upsert per
batch (``INSERT ... ON CONFLICT DO UPDATE SET edits = edits + excluded.edits``), so several processes writing
the same minute add up. Edits go to the project's live sessions. What a process still holds when it dies (at
most one flush interval) is lost: the history is an estimate's input, not a ledger.

``session_activity_prune`` (scheduled daily) deletes minutes older than ``SESSION_ACTIVITY_RETENTION_DAYS``.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, models, transaction

from realtime_bridge.observers import Observed
from sessions.models import PreviewSession, SessionActivity
from sessions.selectors import live_sessions_by_project
from sessions.services.background import BackgroundWriter

logger = logging.getLogger(__name__)

EDIT_EVENTS = frozenset({"file:update", "file:delete"})
FLUSH_BATCH = 1000  # rows per upsert statement
DROP_LOG_EVERY = 1000

# (("session", uuid) | ("project", id), minute) → [edits, edit_bytes, touches]
Key = tuple[tuple[str, Any], datetime]


@dataclass
class _Tally:
    counts: dict[Key, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    lock: threading.Lock = field(default_factory=threading.Lock)
    dropped: int = 0


_tally = _Tally()


def minute_of(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _add(subject: tuple[str, Any], at: datetime, edits: int, size: int, touches: int) -> None:
    key = (subject, minute_of(at))
    with _tally.lock:
        full = key not in _tally.counts and len(_tally.counts) >= settings.SESSION_ACTIVITY_BUFFER
        if full:
            _tally.dropped += 1
        else:
            counts = _tally.counts[key]
            counts[0] += edits
            counts[1] += size
            counts[2] += touches
    if full:
        if _tally.dropped % DROP_LOG_EVERY == 1:  # the first drop, then one line per thousand
            logger.warning("session activity dropped: the tally is full", extra={"total": _tally.dropped})
        return
    _writer.ensure()


def activity_observe(observed: Observed) -> None:
    """The observer: count an edit broadcast in memory (called on the event loop: never blocks on I/O)."""
    if observed.event not in EDIT_EVENTS:
        return
    size = observed.summary.get("size")
    size = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0
    _add(("project", observed.project_id), observed.at, 1, size, 0)


def activity_touch(*, session_id: uuid.UUID, at: datetime) -> None:
    """Count one heartbeat or agent activity report of a session."""
    _add(("session", session_id), at, 0, 0, 1)


def activity_dropped() -> int:
    """Counters this process dropped because the tally was full (since it started or ``activity_reset``)."""
    return _tally.dropped


def activity_pending() -> int:
    return len(_tally.counts)


def activity_reset() -> None:
    with _tally.lock:
        _tally.counts.clear()
        _tally.dropped = 0


def activity_write_in_background(enabled: bool) -> None:
    """Tests switch the writer thread off and call ``activity_flush`` themselves."""
    _writer.enabled = enabled


# --- the writer (database side) ---------------------------------------------------------------------------


def _take() -> dict[Key, list[int]]:
    with _tally.lock:
        taken, _tally.counts = _tally.counts, defaultdict(lambda: [0, 0, 0])
    return taken


def activity_flush() -> int:
    """Write what is tallied (one upsert per ``FLUSH_BATCH`` rows); returns the rows written."""
    taken = _take()
    if not taken:
        return 0
    try:
        rows = activity_rows(taken)
        for start in range(0, len(rows), FLUSH_BATCH):
            _upsert(rows[start : start + FLUSH_BATCH])
    except DatabaseError:
        logger.exception("session activity not written", extra={"count": len(taken)})
        return 0
    return len(rows)


def activity_rows(taken: dict[Key, list[int]]) -> list[tuple[uuid.UUID, datetime, int, int, int]]:
    """The tally as (session, minute, edits, bytes, touches) rows: projects become their live sessions."""
    projects = {subject[1] for (subject, _minute) in taken if subject[0] == "project"}
    sessions = live_sessions_by_project(projects) if projects else {}
    merged: dict[tuple[uuid.UUID, datetime], list[int]] = defaultdict(lambda: [0, 0, 0])
    for (subject, minute), counts in taken.items():
        targets = [subject[1]] if subject[0] == "session" else sessions.get(subject[1], [])
        for session_id in targets:
            merged[(session_id, minute)] = [a + b for a, b in zip(merged[(session_id, minute)], counts, strict=True)]
    return [(session_id, minute, *counts) for (session_id, minute), counts in merged.items()]  # type: ignore[misc]


_UPSERT = (
    "INSERT INTO preview_session_activity (session_id, minute, edits, edit_bytes, touches) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (session_id, minute) DO UPDATE SET "
    "edits = preview_session_activity.edits + excluded.edits, "
    "edit_bytes = preview_session_activity.edit_bytes + excluded.edit_bytes, "
    "touches = preview_session_activity.touches + excluded.touches"
)


def _upsert(rows: list[tuple[uuid.UUID, datetime, int, int, int]]) -> None:
    try:
        _execute(rows)
    except IntegrityError:
        # A session was deleted between the lookup and the write: keep the rows of those still there.
        alive = set(PreviewSession.objects.filter(id__in={row[0] for row in rows}).values_list("id", flat=True))
        _execute([row for row in rows if row[0] in alive])


def _execute(rows: list[tuple[uuid.UUID, datetime, int, int, int]]) -> None:
    if not rows:
        return
    session_field: models.Field[Any, Any] = models.UUIDField()  # the column's own type: the upsert is raw SQL
    minute_field: models.Field[Any, Any] = models.DateTimeField()
    params = [
        (
            session_field.get_db_prep_value(session_id, connection),
            minute_field.get_db_prep_value(minute, connection),
            edits,
            size,
            touches,
        )
        # One order for every writer, so two processes upserting the same rows cannot deadlock.
        for session_id, minute, edits, size, touches in sorted(rows, key=lambda row: (str(row[0]), row[1]))
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(_UPSERT, params)


def session_activity_prune(*, now: datetime) -> int:
    """Delete activity minutes older than ``SESSION_ACTIVITY_RETENTION_DAYS``; returns how many."""
    cutoff = now - timedelta(days=settings.SESSION_ACTIVITY_RETENTION_DAYS)
    deleted, _ = SessionActivity.objects.filter(minute__lt=cutoff).delete()
    if deleted:
        logger.info("session activity pruned", extra={"count": deleted, "cutoff": cutoff.isoformat()})
    return deleted


_writer = BackgroundWriter("session-activity", activity_flush, lambda: settings.SESSION_ACTIVITY_FLUSH_SECONDS)
