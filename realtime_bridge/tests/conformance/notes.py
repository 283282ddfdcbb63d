"""A table of the conformance suite's own: ``public.conformance_notes``, one column of each common type.

The suite must not import the apps above the endpoint (the layers), and ``preview_sessions`` has no `text`
column (Django makes `varchar` ones, on which Supabase refuses `like`, `ilike`, `match` and `imatch`). So
the suite's server process also loads ``NotesConfig`` (``VELOCITY_EXTRA_APPS``), which registers this table
as an app registers its own (``realtime_bridge.tables``: columns, primary key, a row rule standing for its
RLS: a note's owner sees it); the tests create the table in the test database, write real rows into it and
announce each write after commit as a service does (``publish.publish_row_change_on_commit``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.apps import AppConfig
from django.db import connection, transaction

from realtime_bridge import events, publish, tables
from velocity.auth import Claims

TABLE = "conformance_notes"
APP = "realtime_bridge.tests.conformance.notes.NotesConfig"
COLUMNS = [
    {"name": "id", "type": "int8"},
    {"name": "owner", "type": "uuid"},
    {"name": "body", "type": "text"},
    {"name": "tag", "type": "text"},
    {"name": "status", "type": "varchar"},
    {"name": "size", "type": "int4"},
    {"name": "done", "type": "bool"},
    {"name": "at", "type": "timestamptz"},
    {"name": "meta", "type": "jsonb"},
]
NAMES = [column["name"] for column in COLUMNS]
CREATE = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY, owner uuid NOT NULL, body text, tag text, status varchar(16), size integer,
    done boolean, at timestamptz, meta jsonb
)"""
DROP = f"DROP TABLE IF EXISTS {TABLE}"
_ALL = ", ".join(NAMES)


def note_visible(claims: Claims, row: Mapping[str, Any]) -> bool:
    """The RLS such a table would have: ``owner = auth.uid()``."""
    return claims.sub is not None and str(row.get("owner")) == str(claims.sub)


class NotesConfig(AppConfig):
    name = "realtime_bridge.tests.conformance"
    label = "conformance_notes"

    def ready(self) -> None:
        tables.register(schema="public", table=TABLE, visible=note_visible, columns=lambda: COLUMNS)


def _record(values: Any) -> dict[str, Any]:
    """A fetched row as Realtime sends it: JSON values."""
    row = dict(zip(NAMES, values, strict=True))
    row["owner"] = str(row["owner"])
    if isinstance(row["at"], datetime):
        row["at"] = row["at"].isoformat()
    if isinstance(row["meta"], str):  # Django's psycopg setup hands jsonb over as text
        row["meta"] = json.loads(row["meta"])
    return row


def _announce(change_type: str, record: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
    change = events.row_change(table=TABLE, change_type=change_type, columns=COLUMNS, record=record, old_record=old)
    publish.publish_row_change_on_commit(change)


def note_insert(**values: Any) -> dict[str, Any]:
    """Insert a note (``owner`` and any other columns) and announce it after commit; the row as written."""
    values = {**values, "meta": json.dumps(values["meta"]) if "meta" in values else None}
    names = [name for name in values]
    sql = f"INSERT INTO {TABLE} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))}) RETURNING {_ALL}"  # noqa: S608
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, list(values.values()))
        row = _record(cursor.fetchone())
        _announce("INSERT", row, None)
    return row


def note_update(note_id: int, **values: Any) -> dict[str, Any]:
    """Change a note and announce it with its whole old row (the endpoint keeps only the key)."""
    assignments = ", ".join(f"{name} = %s" for name in values)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT {_ALL} FROM {TABLE} WHERE id = %s FOR UPDATE", [note_id])  # noqa: S608
        old = _record(cursor.fetchone())
        cursor.execute(f"UPDATE {TABLE} SET {assignments} WHERE id = %s RETURNING {_ALL}", [*values.values(), note_id])  # noqa: S608
        row = _record(cursor.fetchone())
        _announce("UPDATE", row, old)
    return row


def note_delete(note_id: int) -> dict[str, Any]:
    """Delete a note and announce it with its whole old row (the endpoint decides visibility on it)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE id = %s RETURNING {_ALL}", [note_id])  # noqa: S608
        old = _record(cursor.fetchone())
        _announce("DELETE", None, old)
    return old
