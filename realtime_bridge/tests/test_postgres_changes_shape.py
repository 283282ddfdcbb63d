"""The payload a subscriber receives, as realtime.apply_rls shapes it (supabase/realtime tenant migration
20260709120000_fix_apply_rls_filter_role_leak.ex): select lists, old rows as their key, oversized changes."""

from __future__ import annotations

from typing import Any

from realtime_bridge import events, tables
from realtime_bridge.postgres_changes import MAX_RECORD_BYTES, shape

COLUMNS = [{"name": "id", "type": "int8"}, {"name": "owner", "type": "uuid"}, {"name": "body", "type": "text"}]
TABLE = tables.Table("public", "notes", lambda claims, row: True, lambda: COLUMNS, ("id",))
ROW = {"id": 7, "owner": "0b6c4c1e-7a8e-4d59-9a57-3c1f0a8e2b11", "body": "hello"}


def change(kind: str, record: Any = None, old: Any = None) -> dict[str, Any]:
    return events.row_change(table="notes", change_type=kind, columns=COLUMNS, record=record, old_record=old)


def test_a_select_list_keeps_the_selected_columns_and_the_primary_key():
    data = shape(change("UPDATE", ROW, ROW), TABLE, ("body",))
    assert [column["name"] for column in data["columns"]] == ["id", "body"]
    assert data["record"] == {"id": 7, "body": "hello"}
    assert data["old_record"] == {"id": 7}


def test_old_rows_are_their_primary_key_only_and_an_update_without_one_takes_the_new_rows():
    assert shape(change("DELETE", old=ROW), TABLE, None)["old_record"] == {"id": 7}
    assert "record" not in shape(change("DELETE", old=ROW), TABLE, None)
    assert shape(change("UPDATE", ROW), TABLE, None)["old_record"] == {"id": 7}
    assert "old_record" not in shape(change("INSERT", ROW), TABLE, None)


def test_a_change_over_a_mebibyte_keeps_only_short_values_and_says_so():
    big = {**ROW, "body": "x" * MAX_RECORD_BYTES}
    data = shape(change("INSERT", big), TABLE, None)
    assert data["record"] == {"id": 7, "owner": ROW["owner"]}  # the owner's JSON text is 38 bytes, the body's is not
    assert data["errors"] == ["Error 413: Payload Too Large"]
    assert shape(change("INSERT", ROW), TABLE, None)["errors"] is None
