"""A table with `text` columns for the conformance suite: ``public.conformance_notes``.

``preview_sessions`` has no `text` column (Django makes `varchar` ones), and Supabase refuses `like`,
`ilike`, `match` and `imatch` on `varchar`; these operators need a `text` column to deliver anything. The
suite's own server process loads ``NotesConfig`` (``server_settings``), which registers the table as an app
registers its own (``realtime_bridge.tables``); the test creates the table, writes real rows into it and
announces them as a service would (``publish.publish_row_change_on_commit``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.apps import AppConfig
from django.db import connection, transaction

from realtime_bridge import events, publish, tables
from velocity.auth import Claims

TABLE = "conformance_notes"
COLUMNS = [
    {"name": "id", "type": "int8"},
    {"name": "owner", "type": "uuid"},
    {"name": "body", "type": "text"},
    {"name": "tag", "type": "text"},
]
CREATE = f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, owner uuid NOT NULL, body text, tag text)"
DROP = f"DROP TABLE IF EXISTS {TABLE}"


def note_visible(claims: Claims, row: Mapping[str, Any]) -> bool:
    """The RLS such a table would have: its owner sees it."""
    return claims.sub is not None and str(row.get("owner")) == str(claims.sub)


class NotesConfig(AppConfig):
    name = "realtime_bridge.tests.conformance"
    label = "conformance_notes"

    def ready(self) -> None:
        tables.register(schema="public", table=TABLE, visible=note_visible, columns=lambda: COLUMNS)


def note_insert(*, owner: str, body: str, tag: str | None = None) -> dict[str, Any]:
    """Insert a row and announce it after commit; the row as written."""
    with transaction.atomic(), connection.cursor() as cursor:
        sql = f"INSERT INTO {TABLE} (owner, body, tag) VALUES (%s, %s, %s) RETURNING id, owner, body, tag"  # noqa: S608
        cursor.execute(sql, [owner, body, tag])
        row = dict(zip(("id", "owner", "body", "tag"), cursor.fetchone() or (), strict=True))
        row["owner"] = str(row["owner"])
        change = events.row_change(table=TABLE, change_type="INSERT", columns=COLUMNS, record=row)
        publish.publish_row_change_on_commit(change)
    return row
