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

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from django.db import models
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

from sessions.models import PreviewSession
from sessions.serializers import SessionSerializer

FIELDS: tuple[str, ...] = tuple(SessionSerializer.Meta.fields)


def _stored_as(name: str) -> models.Field[Any, Any]:
    """The column's own field (a foreign key's is the target's: ``machine_id`` holds a UUID)."""
    field: Any = PreviewSession._meta.get_field(name)
    return getattr(field, "target_field", field)


DATE_FIELDS = frozenset(name for name in FIELDS if isinstance(_stored_as(name), models.DateTimeField))
ORDERED_DATE_FIELDS = tuple(name for name in FIELDS if name in DATE_FIELDS)
UUID_FIELDS = tuple(name for name in FIELDS if isinstance(_stored_as(name), models.UUIDField))
UTC_ZONES = frozenset({UTC, ZoneInfo("UTC")})
ZERO = timedelta(0)
DRF_ENCODER = JSONEncoder()


def iso_datetime(value: datetime | None, zone: tzinfo) -> str | None:
    """What DRF's ``DateTimeField`` writes: ISO 8601 in the current time zone, ``Z`` for UTC."""
    if not value:
        return None
    if zone in UTC_ZONES and value.tzinfo is not None and value.utcoffset() == ZERO:
        return value.isoformat()[:-6] + "Z"  # the stored UTC as it is ("+00:00" → "Z"): no conversion to make
    local = timezone.localtime(value, zone) if timezone.is_aware(value) else timezone.make_aware(value, zone)
    text = local.isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def _converted(row: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    """``row`` (keys in ``FIELDS`` order) with its dates as DRF writes them and its UUIDs as text, in place:
    every other field is already what the JSON holds (text, an int, the JSON object)."""
    for name in ORDERED_DATE_FIELDS:
        row[name] = iso_datetime(row[name], zone)
    for name in UUID_FIELDS:
        value = row[name]
        if value is not None:
            row[name] = str(value)
    return row


def sessions_json(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's JSON from fresh ``values(*FIELDS)`` rows, converted in place (their keys are already in
    ``FIELDS`` order, and nothing else holds them)."""
    zone = timezone.get_current_timezone()
    return [_converted(row, zone) for row in rows]


def page_rows(rows: Sequence[dict[str, Any]]) -> Sequence[dict[str, Any]]:
    """What the list answers for ``values(*FIELDS)`` rows, given to ``SessionRowsRenderer``: in UTC the rows as
    they are (the renderer writes their dates and UUIDs in C, as DRF would); in another time zone converted here."""
    return rows if timezone.get_current_timezone() in UTC_ZONES else sessions_json(rows)


def session_data(session: PreviewSession) -> dict[str, Any]:
    """A model's ``page_rows`` form: what ``SessionRowsRenderer`` writes as ``SessionSerializer``'s JSON."""
    return page_rows([{name: getattr(session, name) for name in FIELDS}])[0]


class SessionRowsRenderer(JSONRenderer):
    """DRF's ``JSONRenderer`` output, written by orjson: the same bytes for the data DRF's serializers produce, and
    in UTC for raw ``values()`` rows too (a date as ISO 8601 with ``Z`` and microseconds when not zero, a UUID
    as its hyphenated text: what ``SessionSerializer`` writes). A list of 50 sessions was a quarter of the list
    request's CPU between converting each field in Python and encoding (docs/benchmarks.md, *REST under load,
    third round*). Anything orjson does not know (a lazy translation, a ``Decimal``) goes to DRF's encoder; an
    asked-for indent is two spaces; a float in exponent form is written ``1e-7`` where Python writes ``1e-07``
    (the same number; the session's only floats, its boot timings, are rounded to milliseconds)."""

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        if data is None:
            return b""
        indent = self.get_indent(accepted_media_type or "", renderer_context or {})
        option = orjson.OPT_UTC_Z | (orjson.OPT_INDENT_2 if indent else 0)
        text = orjson.dumps(data, default=DRF_ENCODER.default, option=option)
        # As DRF does: U+2028 and U+2029 escaped, so the JSON is also valid JavaScript.
        if b"\xe2\x80\xa8" in text or b"\xe2\x80\xa9" in text:
            text = text.replace(b"\xe2\x80\xa8", b"\\u2028").replace(b"\xe2\x80\xa9", b"\\u2029")
        return text
