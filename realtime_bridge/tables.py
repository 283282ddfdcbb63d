"""Which `postgres_changes` rows a subscriber may see: visibility rules registered by the tables' owners.

The endpoint knows no app's models. The app that owns a table registers its row rule (``sessions``
registers ``public.preview_sessions`` with the seed's RLS) and publishes the table's changes itself
(``publish.publish_row_change_on_commit``). The service role sees every row; a table nobody registered is
visible to the service role only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from velocity.auth import Claims

RowRule = Callable[[Claims, Mapping[str, Any]], bool]
_rules: dict[tuple[str, str], RowRule] = {}


def register(*, schema: str, table: str, visible: RowRule) -> None:
    """``visible(claims, row)`` decides, without a query, whether ``claims`` may see a changed row."""
    _rules[(schema, table)] = visible


def row_visible(claims: Claims, change: Mapping[str, Any]) -> bool:
    """May ``claims`` receive this change (a `postgres_changes` data map)?"""
    if claims.is_service_role:
        return True
    rule = _rules.get((str(change.get("schema")), str(change.get("table"))))
    row = change.get("record") or change.get("old_record") or {}
    return rule is not None and rule(claims, row)
