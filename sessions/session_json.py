"""The session's JSON for the hot reads (the list and the detail GET), without DRF's field machinery.

Profiling the list under 16 concurrent clients (docs/benchmarks.md, *REST under load*) showed
``SessionSerializer`` spending its time per field, not per row: each of the 9 date fields looks up the
current time zone through asgiref's context-local storage, and 24 field objects each run
``to_representation``, for every one of the 50 rows. These functions build the same dict from a
``values()`` row (no model instance, no join on the machine) or from a model, with the time zone looked
up once per response. ``SessionSerializer`` stays the schema (the OpenAPI document is generated from it)
and the serializer of the writes; ``sessions/tests/test_session_json.py`` proves both give the same JSON
for a session in every state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from django.db import models
from django.utils import timezone

from sessions.models import PreviewSession
from sessions.serializers import SessionSerializer

FIELDS: tuple[str, ...] = tuple(SessionSerializer.Meta.fields)
DATE_FIELDS = frozenset(
    name for name in FIELDS if isinstance(PreviewSession._meta.get_field(name), models.DateTimeField)
)
UTC_ZONES = frozenset({UTC, ZoneInfo("UTC")})
ZERO = timedelta(0)
AS_IS_FIELDS = frozenset({"memory_mb", "boot_timings"})  # an int and a JSON object, as DRF passes them


def iso_datetime(value: datetime | None, zone: tzinfo) -> str | None:
    """What DRF's ``DateTimeField`` writes: ISO 8601 in the current time zone, ``Z`` for UTC."""
    if not value:
        return None
    if zone in UTC_ZONES and value.tzinfo is not None and value.utcoffset() == ZERO:
        return value.replace(tzinfo=None).isoformat() + "Z"  # the stored UTC as it is: no conversion to make
    local = timezone.localtime(value, zone) if timezone.is_aware(value) else timezone.make_aware(value, zone)
    text = local.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def _as_is(value: Any) -> Any:
    return value


def _text(value: Any) -> str | None:
    """UUIDs as their hyphenated text, choices and text as they are."""
    return None if value is None else str(value)


# Each field and how it is written, decided once: the loop per row is then one call per field.
CONVERTERS: tuple[tuple[str, Any], ...] = tuple(
    (name, None if name in DATE_FIELDS else _as_is if name in AS_IS_FIELDS else _text) for name in FIELDS
)


def session_json(row: Mapping[str, Any], zone: tzinfo | None = None) -> dict[str, Any]:
    """One session's JSON from a ``values(*FIELDS)`` row (``zone``: the current time zone, looked up once)."""
    zone = zone or timezone.get_current_timezone()
    return {
        name: iso_datetime(row[name], zone) if convert is None else convert(row[name]) for name, convert in CONVERTERS
    }


def sessions_json(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    zone = timezone.get_current_timezone()
    return [session_json(row, zone) for row in rows]


def session_instance_json(session: PreviewSession) -> dict[str, Any]:
    """The same JSON from a model instance (the detail GET)."""
    return session_json({name: getattr(session, name) for name in FIELDS})
