"""`preview_sessions` rows as `postgres_changes` records, the operator `session.status` event and the
editor's `session:status` broadcast: what every session write announces, after commit.

Services call ``sessions_announce(ids, change_type)`` inside their transaction, for single and bulk writes
alike; nothing is announced by model signals. The row rule of the seed's RLS is registered with the
realtime endpoint here too (``session_row_visible``).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import models

from realtime_bridge import events, publish
from sessions.models import PreviewSession
from velocity.auth import Claims

TABLE = "preview_sessions"

_PG_TYPES = {
    "UUIDField": "uuid",
    "CharField": "varchar",
    "URLField": "varchar",
    "TextField": "text",
    "DateTimeField": "timestamptz",
    "BigAutoField": "int8",
    "BigIntegerField": "int8",
    "IntegerField": "int4",
    "PositiveIntegerField": "int4",
    "BooleanField": "bool",
    "DecimalField": "numeric",
    "PositiveSmallIntegerField": "int2",
    "SmallIntegerField": "int2",
    "PositiveBigIntegerField": "int8",
    "FloatField": "float8",
    "JSONField": "jsonb",
}


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    return value


def _fields() -> list[models.Field[Any, Any]]:
    return [f for f in PreviewSession._meta.concrete_fields]


def session_columns() -> list[dict[str, str]]:
    return [dict(column) for column in _columns()]


@functools.cache
def _columns() -> tuple[dict[str, str], ...]:
    """Worked out once (a sweep announces 500 rows); ``session_columns`` hands out copies."""
    columns = []
    for field in _fields():
        target = field.target_field if field.is_relation else field  # type: ignore[attr-defined]
        columns.append({"name": field.column, "type": _PG_TYPES.get(target.get_internal_type(), "text")})
    return tuple(columns)


def session_record(session: PreviewSession) -> dict[str, Any]:
    """The row as Realtime would send it: column names, JSON values."""
    return {field.column: _value(getattr(session, field.attname)) for field in _fields()}


def _announce(change_type: str, session: PreviewSession, using: str | None) -> None:
    record = session_record(session)
    change = events.row_change(
        table=TABLE,
        change_type=change_type,
        columns=session_columns(),
        record=None if change_type == "DELETE" else record,
        # The whole old row, so the endpoint can decide visibility (user_id); subscribers get its key only,
        # as from Postgres without REPLICA IDENTITY FULL (realtime_bridge.postgres_changes.shape).
        old_record=record if change_type == "DELETE" else ({"id": record["id"]} if change_type == "UPDATE" else None),
    )
    publish.publish_row_change_on_commit(change, using=using)
    status = events.session_status(
        session_id=record["id"],
        project_id=session.project_id,
        status=session.status,
        preview_url=session.preview_url or None,
        end_reason=session.end_reason or None,
        user_id=record["user_id"],
    )
    publish.publish_on_commit(status, using=using)


def sessions_announce(
    sessions: Iterable[PreviewSession], change_type: str = "UPDATE", *, using: str | None = None
) -> None:
    """Announce these rows' change (INSERT, UPDATE or DELETE) after the surrounding transaction commits."""
    for session in sessions:
        _announce(change_type, session, using)


def announced_together() -> AbstractContextManager[None]:
    """Around a write: its announcements (the row, the operator event, ``session:status``) are collected as it
    commits and go out together when the block ends (``publish.batched``): one hop to the server's event loop
    instead of one per publication, each of which a request thread waited for while the loop was busy (a
    warm create spent a third of its time there: docs/benchmarks.md, *The warm path, third round*)."""
    return publish.batched()


def session_status_announce(session: PreviewSession, change_type: str = "UPDATE") -> None:
    """Tell everyone about one session's change, after commit: the row (``postgres_changes`` and the
    operator views) and ``session:status`` on the project's channel, for the editor."""
    sessions_announce([session], change_type)
    publish.broadcast_on_commit(
        topic=events.project_topic(session.project_id),
        event="session:status",
        payload={"session_id": str(session.id), "status": session.status, "preview_url": session.preview_url or None},
    )


def session_row_visible(claims: Claims, row: Mapping[str, Any]) -> bool:
    """The seed's RLS for `postgres_changes`, without a query: a user sees their own rows (`auth.uid() =
    user_id`); a preview agent's key speaks for a machine, not a user, and sees none. (The service role's
    "all rows" is the endpoint's own rule.)"""
    if claims.is_agent or claims.role != "authenticated" or claims.sub is None:
        return False
    return str(row.get("user_id")) == str(claims.sub)
