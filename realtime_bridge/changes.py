"""`preview_sessions` rows as `postgres_changes` records (and operator `session.status` events),
published after commit.

`save()`/`delete()` reach us through model signals (connected in `apps.py`: an adapter, no
logic). Bulk `QuerySet.update()` sends no signal, so services that change sessions that way
call `session_rows_changed(ids)` after their update.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import models

from realtime_bridge import events
from sessions.models import PreviewSession

TABLE = "preview_sessions"

_PG_TYPES = {
    "UUIDField": "uuid",
    "CharField": "text",
    "URLField": "text",
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
    columns = []
    for field in _fields():
        target = field.target_field if field.is_relation else field  # type: ignore[attr-defined]
        columns.append({"name": field.column, "type": _PG_TYPES.get(target.get_internal_type(), "text")})
    return columns


def session_record(session: PreviewSession) -> dict[str, Any]:
    """The row as Realtime would send it: column names, JSON values."""
    return {field.column: _value(getattr(session, field.attname)) for field in _fields()}


def _publish(change_type: str, session: PreviewSession, using: str | None) -> None:
    record = session_record(session)
    change = events.row_change(
        table=TABLE,
        change_type=change_type,
        columns=session_columns(),
        record=None if change_type == "DELETE" else record,
        # Without REPLICA IDENTITY FULL Postgres only has the key of the old row; a delete
        # carries the whole row so visibility (user_id / project_id) can still be decided.
        old_record=record if change_type == "DELETE" else ({"id": record["id"]} if change_type == "UPDATE" else None),
    )
    events.publish_row_change_on_commit(change, using=using)
    status = events.session_status(
        session_id=record["id"],
        project_id=session.project_id,
        status=session.status,
        preview_url=session.preview_url or None,
        end_reason=session.end_reason or None,
    )
    events.publish_on_commit(status, using=using)


def on_session_saved(sender: Any, instance: PreviewSession, created: bool, using: str, **kwargs: Any) -> None:
    _publish("INSERT" if created else "UPDATE", instance, using)


def on_session_deleted(sender: Any, instance: PreviewSession, using: str, **kwargs: Any) -> None:
    _publish("DELETE", instance, using)


def session_rows_changed(session_ids: Iterable[uuid.UUID], *, using: str | None = None) -> None:
    """Publish UPDATEs for rows changed by `QuerySet.update()` (call inside the same transaction)."""
    for session in PreviewSession.objects.using(using).filter(pk__in=list(session_ids)):
        _publish("UPDATE", session, using)
