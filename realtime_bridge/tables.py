"""The tables `postgres_changes` may follow, and which of their rows a subscriber may see.

The endpoint knows no app's models. The app that owns a table registers it (``sessions`` registers
``public.preview_sessions`` with its columns, primary key and the seed's RLS as a row rule) and publishes
the table's changes itself (``publish.publish_row_change_on_commit``). The registered tables play the part
of Supabase's ``supabase_realtime`` publication: a binding on a table nobody registered is refused as
Realtime refuses one on a table outside the publication. The service role sees every row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from velocity.auth import Claims

RowRule = Callable[[Claims, Mapping[str, Any]], bool]
Columns = Callable[[], Sequence[Mapping[str, str]]]


@dataclass(frozen=True, slots=True)
class Table:
    schema: str
    name: str
    visible: RowRule
    columns: Columns
    primary_key: tuple[str, ...]

    def column_types(self) -> dict[str, str]:
        """Column name -> Postgres type name (``typname``: ``uuid``, ``varchar``, ``int4``, …)."""
        return {column["name"]: column["type"] for column in self.columns()}


_tables: dict[tuple[str, str], Table] = {}


def register(
    *,
    schema: str,
    table: str,
    visible: RowRule,
    columns: Columns = tuple,
    primary_key: Sequence[str] = ("id",),
) -> None:
    """``visible(claims, row)`` decides, without a query, whether ``claims`` may see a changed row (the
    table's RLS); ``columns()`` lists ``{"name", "type"}`` as the change's ``columns`` does. Without
    ``REPLICA IDENTITY FULL`` (not offered) an old row is known by its ``primary_key`` only."""
    _tables[(schema, table)] = Table(schema, table, visible, columns, tuple(primary_key))


def registered() -> list[Table]:
    return list(_tables.values())


def get(schema: str, table: str) -> Table | None:
    return _tables.get((schema, table))


def row_visible(claims: Claims, change: Mapping[str, Any]) -> bool:
    """May ``claims`` receive this change (a `postgres_changes` data map with the whole rows)?"""
    if claims.is_service_role:
        return True
    table = get(str(change.get("schema")), str(change.get("table")))
    row = change.get("record") or change.get("old_record") or {}
    return table is not None and table.visible(claims, row)
