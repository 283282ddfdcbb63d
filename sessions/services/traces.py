"""Agent log lines and file-sync events, kept per session so the operator's session page survives a reload.

The endpoint (or, in client mode, the bridge) hands every broadcast on ``project:{id}`` to ``trace_observe``
(registered with ``realtime_bridge.observers`` in ``AppConfig.ready``). That runs on the server's event loop
for every broadcast, so it only appends to a bounded in-memory buffer; a background thread writes the buffer
every ``SESSION_TRACE_FLUSH_SECONDS`` with one bulk insert, then trims each touched session to its newest
``AGENT_LOG_KEEP`` log lines and ``SYNC_EVENTS_KEEP`` sync events. When the writer falls behind, new items
are dropped and counted (``velocity_session_traces_dropped_total``) rather than slowing the endpoint.

Records go to the project's live sessions (normally one: the agent on that channel is theirs), or, when none
is live, to those that ended in the last minute (the agent's last words before a crash matter most).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from realtime_bridge.observers import Observed
from sessions.models import PreviewSession, SessionTrace, TraceKind
from sessions.selectors import trace_sessions_by_project
from sessions.services.background import BackgroundWriter
from velocity import metrics

logger = logging.getLogger(__name__)

LOG_EVENTS = frozenset({"agent:log"})
# What the editor sends, what the agent answers with (``preview_agent/messages.py``).
SYNC_EVENTS = frozenset(
    {"file:update", "file:delete", "files:snapshot", "file:synced", "files:synced", "agent:error", "agent:manifest"}
)
FLUSH_BATCH = 2000  # items per bulk insert; a full batch also wakes the writer early
MAX_LINE_CHARS = 1000
MAX_TEXT_CHARS = 300
DROP_LOG_EVERY = 1000  # drops logged: the first, then one line per thousand (all are counted in the metric)
MAX_ACKED_FILES = 5000  # the agent's own snapshot limit: one files:synced never names more


def trace_kind(event: str) -> str | None:
    """Which kind of record a broadcast makes, or None when it is not kept."""
    if event in LOG_EVENTS:
        return TraceKind.LOG
    if event in SYNC_EVENTS:
        return TraceKind.SYNC
    return None


# --- what a record keeps (pure) ----------------------------------------------------------------


def _text(value: Any, limit: int = MAX_TEXT_CHARS) -> str | None:
    return None if value is None else str(value)[:limit]


def _version(value: Any) -> int | str | None:
    """Versions are integers; anything else (which the agent refuses) is kept as short text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return _text(value, 40)


def _number(value: Any) -> int | float | None:
    """Figures (sizes, lags, counts) as numbers or nothing: the payloads are the clients' to shape."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _acked_files(files: Any) -> list[list[Any]]:
    entries = files if isinstance(files, list) else []
    acked = [[_text(e.get("path")), _version(e.get("version"))] for e in entries if isinstance(e, Mapping)]
    return acked[:MAX_ACKED_FILES]


def trace_data(observed: Observed) -> dict[str, Any]:
    """The small JSON a record keeps: never file contents; paths, lines and messages truncated."""
    event, payload, summary = observed.event, observed.payload, observed.summary
    kept: dict[str, Any] = {"source": observed.source}
    if event == "agent:log":
        kept |= {
            "stream": _text(payload.get("stream") or "agent", 32),
            "line": _text(payload.get("line"), MAX_LINE_CHARS),
        }
    elif event in ("file:update", "file:delete", "file:synced"):
        kept |= {"path": _text(payload.get("path")), "version": _version(payload.get("version"))}
        # Sizes and lags the endpoint measured (metrics.mirror_summary); the agent's own latency from its ack.
        kept |= {key: _number(summary[key]) for key in ("size", "lag_ms", "ack_lag_ms") if key in summary}
        if event == "file:synced":
            kept["latency_ms"] = _number(payload.get("latency_ms"))
    elif event == "files:snapshot":
        files = payload.get("files")
        kept |= {"count": len(files) if isinstance(files, list) else 0, "mode": _text(payload.get("mode"), 16)}
    elif event == "files:synced":
        files = _acked_files(payload.get("files"))
        kept |= {"count": len(files), "latency_ms": _number(payload.get("latency_ms")), "files": files}
    elif event == "agent:manifest":  # the agent's files after a (re)join or on request: kept without the list
        kept |= {key: payload.get(key) for key in ("part", "parts", "file_count")} | {
            "reason": _text(payload.get("reason"), 16)
        }
    elif event == "agent:error":
        kept |= {key: _text(payload.get(key)) for key in ("event", "code", "message", "path")}
        kept["version"] = _version(payload.get("version"))
    return kept


def trace_rows(batch: Iterable[Observed], sessions: Mapping[str, list[uuid.UUID]]) -> list[SessionTrace]:
    """One unsaved row per (observed broadcast, session of its project); projects with no session keep none."""
    rows = []
    for observed in batch:
        kind, targets = trace_kind(observed.event), sessions.get(observed.project_id, [])
        if kind is None or not targets:
            continue
        data = trace_data(observed)
        rows += [
            SessionTrace(session_id=s, kind=kind, event=observed.event, data=data, at=observed.at) for s in targets
        ]
    return rows


# --- the buffer (event loop side) --------------------------------------------------------------


@dataclass
class _Buffer:
    items: deque[Observed] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    dropped: int = 0


_buffer = _Buffer()


def trace_observe(observed: Observed) -> None:
    """The observer: keep a broadcast worth keeping in memory, never waiting on the database."""
    if trace_kind(observed.event) is None:
        return
    with _buffer.lock:
        full = len(_buffer.items) >= settings.SESSION_TRACE_BUFFER
        if not full:
            _buffer.items.append(observed)
        if len(_buffer.items) >= FLUSH_BATCH:
            _writer.wake.set()
    if full:
        _dropped(1, "buffer_full")
        return
    _writer.ensure()


def _dropped(count: int, reason: str) -> None:
    before, _buffer.dropped = _buffer.dropped, _buffer.dropped + count
    metrics.session_traces_dropped(reason=reason, count=count)
    if before == 0 or before // DROP_LOG_EVERY != _buffer.dropped // DROP_LOG_EVERY:  # no log flood when behind
        logger.warning("session traces dropped", extra={"count": count, "reason": reason, "total": _buffer.dropped})


def traces_dropped() -> int:
    """How many items this process dropped since it started (or since ``traces_reset``)."""
    return _buffer.dropped


def traces_pending() -> int:
    return len(_buffer.items)


def traces_write_in_background(enabled: bool) -> None:
    """Tests switch the writer thread off and call ``traces_flush`` themselves (deterministic, and no
    thread touching the test database behind their back)."""
    _writer.enabled = enabled


def traces_reset() -> None:
    """Forget what is buffered and the drop count (tests start from nothing)."""
    with _buffer.lock:
        _buffer.items.clear()
        _buffer.dropped = 0


# --- the writer (database side) ----------------------------------------------------------------


def _take() -> list[Observed]:
    with _buffer.lock:
        count = min(FLUSH_BATCH, len(_buffer.items))
        return [_buffer.items.popleft() for _ in range(count)]


def traces_flush(*, now: datetime) -> int:
    """Write one batch of what is buffered and trim the sessions it touched; returns the items taken (0: the
    buffer was empty). The background writer calls it; tests call it directly."""
    batch = _take()
    if not batch:
        return 0
    try:
        _write(batch, now=now)
    except DatabaseError:
        logger.exception("session traces not written", extra={"count": len(batch)})
        _dropped(len(batch), "write_failed")
    return len(batch)


def _write(batch: list[Observed], *, now: datetime) -> None:
    sessions = trace_sessions_by_project({observed.project_id for observed in batch}, now=now)
    rows = trace_rows(batch, sessions)
    if not rows:
        return
    try:
        with transaction.atomic():
            SessionTrace.objects.bulk_create(rows)
    except IntegrityError:
        # A session was deleted between the lookup and the insert: keep the rows of those still there.
        alive = set(PreviewSession.objects.filter(id__in={r.session_id for r in rows}).values_list("id", flat=True))
        rows = [row for row in rows if row.session_id in alive]
        SessionTrace.objects.bulk_create(rows)
    for session_id, kind in {(row.session_id, row.kind) for row in rows}:
        session_traces_trim(session_id=session_id, kind=kind)


def session_traces_trim(*, session_id: uuid.UUID, kind: str) -> int:
    """Keep the newest ``AGENT_LOG_KEEP`` log lines or ``SYNC_EVENTS_KEEP`` sync events of a session; returns
    how many older ones were deleted. Two indexed queries, so cheap enough after every write."""
    keep = settings.AGENT_LOG_KEEP if kind == TraceKind.LOG else settings.SYNC_EVENTS_KEEP
    rows = SessionTrace.objects.filter(session_id=session_id, kind=kind)
    edge = rows.order_by("-at", "-id").values_list("at", "id")[keep : keep + 1]
    if not edge:
        return 0
    at, row_id = edge[0]
    deleted, _ = rows.filter(Q(at__lt=at) | Q(at=at, id__lte=row_id)).delete()
    return deleted


def _flush_all() -> None:
    while traces_flush(now=timezone.now()):
        pass


_writer = BackgroundWriter("session-traces", _flush_all, lambda: settings.SESSION_TRACE_FLUSH_SECONDS)
