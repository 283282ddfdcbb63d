"""`postgres_changes` delivery: binding matching, PostgREST-style filters, row visibility."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from realtime_bridge import tables
from realtime_bridge.protocol import Message

if TYPE_CHECKING:
    from realtime_bridge.connection import ChannelState

logger = logging.getLogger(__name__)

_OPS = {"eq", "neq", "lt", "lte", "gt", "gte", "in", "is"}


@dataclass(frozen=True, slots=True)
class Condition:
    column: str
    op: str
    value: str
    negate: bool = False

    def test(self, row: dict[str, Any]) -> bool:
        return _compare(self.op, row.get(self.column), self.value) != self.negate


def parse_filter(text: str | None) -> list[Condition] | None:
    """`col=op.value[,col=op.value]`; None when the filter is not understood (matches nothing)."""
    if not text:
        return []
    conditions = []
    for part in _split(text):
        column, sep, rest = part.partition("=")
        negate = rest.startswith("not.")
        op, dot, value = rest.removeprefix("not.").partition(".")
        if not sep or not dot or op not in _OPS or not column:
            return None
        conditions.append(Condition(column.strip(), op, value, negate))
    return conditions


def _split(text: str) -> list[str]:
    """Split on commas outside `in.(...)` lists."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _compare(op: str, actual: Any, expected: str) -> bool:
    if op == "is":
        return actual is None if expected.lower() == "null" else str(actual).lower() == expected
    text = "" if actual is None else str(actual)
    if op == "eq":
        return actual is not None and text == expected
    if op == "neq":
        return text != expected
    if op == "in":
        return text in {v.strip().strip('"') for v in expected.strip("()").split(",")}
    return _ordered(op, text, expected)


def _ordered(op: str, actual: str, expected: str) -> bool:
    left: Any
    right: Any
    try:
        left, right = float(actual), float(expected)
    except ValueError:
        left, right = actual, expected
    return {
        "lt": left < right,
        "lte": left <= right,
        "gt": left > right,
        "gte": left >= right,
    }[op]


def binding_matches(binding: dict[str, Any], data: dict[str, Any]) -> bool:
    if binding.get("schema", "public") not in ("*", data["schema"]):
        return False
    if binding.get("table", "*") not in ("*", data["table"]):
        return False
    if binding.get("event", "*") not in ("*", data["type"]):
        return False
    conditions = parse_filter(binding.get("filter"))
    if conditions is None:
        return False
    row = data.get("record") or data.get("old_record") or {}
    return all(condition.test(row) for condition in conditions)


async def deliver_change(groups: Iterable[dict[str, ChannelState]], data: dict[str, Any]) -> None:
    """Send one change to every local channel with a matching binding that may see the row."""
    for members in list(groups):
        for state in list(members.values()):
            ids = [b["id"] for b in state.config.bindings if binding_matches(b, data)]
            if ids and tables.row_visible(state.claims, data):
                message = Message(state.topic, "postgres_changes", {"ids": ids, "data": data})
                await state.conn.push(message)
