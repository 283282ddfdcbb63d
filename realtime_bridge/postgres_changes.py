"""`postgres_changes` on the embedded endpoint: subscribing a channel's bindings, and delivering row changes.

As Supabase Realtime does it (supabase/realtime ``lib/extensions/postgres_cdc_rls/`` and the walrus SQL,
``realtime.apply_rls``):

- ``subscribe`` (at join) parses and checks every binding (``pg_filters``) against the registered tables
  (``tables``, the publication's stand-in). All succeed (`system` ``Subscribed to PostgreSQL``, see
  ``status``) or none does (`system` error with the server's text; the channel stays joined and receives
  no change).
- ``deliver_change`` sends a change to each channel with a matching subscription whose token may see the
  row (the table's row rule, as its RLS), once per distinct ``select`` list, with the ids of the bindings it
  satisfies. The payload is shaped as walrus shapes it: ``columns`` and ``record`` limited to the ``select``
  list plus the primary key; ``old_record`` is the primary key only (no ``REPLICA IDENTITY FULL``); a
  DELETE is matched on that key alone.

The published change carries the whole rows (a DELETE's ``old_record`` included) so the row rule can be
decided here; subscribers only ever receive the shaped payload.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from realtime_bridge import tables
from realtime_bridge.pg_filters import (
    EXCEPTION,
    NOT_ENABLED,
    FilterError,
    Params,
    PgError,
    check,
    like,
    parse_params,
    visible_through_filters,
)
from realtime_bridge.protocol import Message, dumps

if TYPE_CHECKING:
    from realtime_bridge.connection import ChannelState

logger = logging.getLogger(__name__)

SUBSCRIBED = "Subscribed to PostgreSQL"
# apply_rls's max_record_bytes (1 MiB): over it, only values of at most 64 bytes are sent.
MAX_RECORD_BYTES = 1024 * 1024
MAX_VALUE_BYTES_WHEN_TOO_LARGE = 64


@dataclass(frozen=True, slots=True)
class Subscription:
    """One accepted binding: its id in the join reply, its parameters and the tables it matched."""

    id: int
    params: Params
    entities: frozenset[tuple[str, str]]

    @property
    def select_key(self) -> tuple[str, ...] | None:
        return tuple(sorted(self.params.select)) if self.params.select else None

    def wants(self, change: Change) -> bool:
        if self.params.action not in ("*", change.data.get("type")):
            return False
        if (change.table.schema, change.table.name) not in self.entities:
            return False
        return visible_through_filters(self.params.conditions, change.row, change.types)


@dataclass
class Change:
    """One change as the fan-out reads it, worked out once whatever the number of subscribers."""

    data: Mapping[str, Any]
    table: tables.Table
    types: dict[str, str] = field(init=False)
    row: Mapping[str, Any] = field(init=False)  # what filters see: the new row, or a DELETE's key
    shaped: dict[tuple[str, ...] | None, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.types = self.table.column_types()
        deleted = self.data.get("type") == "DELETE"
        self.row = old_identity(self.data, self.table) if deleted else (self.data.get("record") or {})

    def payload(self, select: tuple[str, ...] | None) -> dict[str, Any]:
        if select not in self.shaped:
            self.shaped[select] = shape(self.data, self.table, select)
        return self.shaped[select]


# The subscriptions of each joined channel, or why its bindings were refused (a channel that left or closed
# drops out by itself).
_subscribed: weakref.WeakKeyDictionary[ChannelState, tuple[Subscription, ...]] = weakref.WeakKeyDictionary()
_refused: weakref.WeakKeyDictionary[ChannelState, str] = weakref.WeakKeyDictionary()


def subscribe(state: ChannelState) -> None:
    """Subscribe the channel's bindings, all or none. Called before the join is answered, so that a change
    committed once the client holds its reply reaches it (Realtime subscribes just after the reply)."""
    try:
        _subscribed[state] = tuple(_subscription(binding) for binding in state.config.bindings)
    except FilterError as exc:
        logger.info("postgres_changes subscription refused", extra={"topic": state.topic, "reason": str(exc)})
        _refused[state] = str(exc)


def status(state: ChannelState) -> tuple[str, str]:
    """The `system` message after the join reply: ``(status, message)``."""
    refused = _refused.get(state)
    return ("error", refused) if refused is not None else ("ok", SUBSCRIBED)


def _subscription(binding: Mapping[str, Any]) -> Subscription:
    params = parse_params({k: v for k, v in binding.items() if k != "id"})
    entities = [t for t in tables.registered() if _like(t.schema, params.schema) and _like(t.name, params.table)]
    if not entities:
        raise FilterError(NOT_ENABLED + params.log_text())
    for table in entities:
        try:
            check(params, table.column_types())
        except PgError as exc:
            raise FilterError(f"{EXCEPTION}{params.log_text()}. Exception: {exc}") from None
    return Subscription(int(binding["id"]), params, frozenset((t.schema, t.name) for t in entities))


def _like(name: str, pattern: str) -> bool:
    """The publication lookup: ``tablename like pattern`` (``*`` = ``%``; ``_`` any one character)."""
    return like(name, "%" if pattern == "*" else pattern.replace("\\", "\\\\"))


# --- the payload (apply_rls's output) ----------------------------------------------------------------


def old_identity(change: Mapping[str, Any], table: tables.Table) -> dict[str, Any]:
    """The old row as Postgres logs it without ``REPLICA IDENTITY FULL``: its primary key (for an UPDATE
    whose publisher sent none, the key of the new row)."""
    old = change.get("old_record") or {}
    source = old if all(key in old for key in table.primary_key) else (change.get("record") or {})
    return {key: source[key] for key in table.primary_key if key in source}


def shape(change: Mapping[str, Any], table: tables.Table, select: tuple[str, ...] | None) -> dict[str, Any]:
    """What a subscriber with ``select`` receives: the selected columns and the primary key only. A change
    over ``MAX_RECORD_BYTES`` keeps only its values of at most 64 bytes and says so in ``errors``."""
    too_large = len(dumps(change).encode()) > MAX_RECORD_BYTES

    def kept(name: str, value: Any = None) -> bool:
        if too_large and len(dumps(value).encode()) > MAX_VALUE_BYTES_WHEN_TOO_LARGE:
            return False
        return select is None or name in select or name in table.primary_key

    data = {k: v for k, v in change.items() if k not in ("record", "old_record", "columns")}
    data["columns"] = [column for column in change.get("columns") or [] if kept(column["name"])]
    if change.get("type") in ("INSERT", "UPDATE"):
        data["record"] = {k: v for k, v in (change.get("record") or {}).items() if kept(k, v)}
    if change.get("type") in ("UPDATE", "DELETE"):
        data["old_record"] = {k: v for k, v in old_identity(change, table).items() if kept(k, v)}
    if too_large:
        data["errors"] = ["Error 413: Payload Too Large"]
    return data


# --- delivery ----------------------------------------------------------------------------------------


async def deliver_change(groups: Iterable[dict[str, ChannelState]], data: dict[str, Any]) -> None:
    """Send one change to every local channel with a matching subscription that may see the row."""
    table = tables.get(str(data.get("schema")), str(data.get("table")))
    if table is None:
        return
    change = Change(data, table)
    for members in list(groups):
        for state in list(members.values()):
            await _deliver_to(state, change)


async def _deliver_to(state: ChannelState, change: Change) -> None:
    matching = [s for s in _subscribed.get(state, ()) if s.wants(change)]
    if not matching or not tables.row_visible(state.claims, change.data):
        return
    by_select: dict[tuple[str, ...] | None, list[int]] = {}
    for subscription in matching:
        by_select.setdefault(subscription.select_key, []).append(subscription.id)
    for select in sorted(by_select, key=lambda key: ",".join(key or ())):
        payload = {"ids": by_select[select], "data": change.payload(select)}
        await state.conn.push(Message(state.topic, "postgres_changes", payload))
