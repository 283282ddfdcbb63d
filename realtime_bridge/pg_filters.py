"""`postgres_changes` subscription parameters as Supabase Realtime reads and checks them (pure functions).

Three steps, each after the server's own (supabase/realtime):

- ``parse_params``: a join's binding to ``Params`` or the error text of
  ``lib/extensions/postgres_cdc_rls/subscriptions.ex`` (``parse_subscription_params``: operators, ``not.``,
  commas outside quotes and parentheses, quoted values, ``in.(…)``, ``select`` lists);
- ``check``: what the ``realtime.subscription_check_filters`` trigger refuses (unknown columns, values the
  column's type cannot take, ``is``/``like``/``match`` on the wrong types, bad regular expressions, more
  than 100 ``in`` values, unknown ``select`` columns), as the Postgres error Realtime reports;
- ``visible_through_filters``: ``realtime.is_visible_through_filters``: every condition must name a column
  of the row and hold for its value, compared as the column's type (``pg_values``); a NULL fails every
  operator but ``is`` and ``isdistinct``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from realtime_bridge.pg_values import REGTYPES, PgError, cast, column_value, like

OPERATORS = ("eq", "neq", "lt", "lte", "gt", "gte", "in", "like", "ilike", "is", "match", "imatch", "isdistinct")
IS_VALUES = ("null", "true", "false", "unknown")
MAX_IN_VALUES = 100
SELECT_NOT_A_LIST = (
    'Error parsing `select` params: expected a list of column name strings, e.g. select: ["col1", "col2"]'
)
SELECT_ON_WILDCARD = (
    "Column selection is not supported for wildcard subscriptions. Provide an explicit schema and table name."
)
NO_PARAMS = "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: "
NOT_ENABLED = (
    "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given "
    "connect parameters: "
)
EXCEPTION = (
    "Unable to subscribe to changes with given parameters. An exception happened so please check your connect "
    "parameters: "
)

# Types with a `~~` (LIKE) operator of their own, and with `~`/`~*` on the same type on both sides: the
# trigger looks the operator up for the column's exact type, so `varchar` (which borrows text's) is refused.
LIKE_TYPES = ("text", "name", "bpchar", "bytea")
REGEX_TYPES = ("text",)


class FilterError(Exception):
    """A subscription Realtime refuses; ``str(exc)`` is the text of its `system` error."""


def _raised(message: str) -> PgError:
    return PgError("P0001", "raise_exception", message)


@dataclass(frozen=True, slots=True)
class Condition:
    column: str
    op: str
    value: str  # as stored by Realtime: unquoted, `in` lists as `{a,b}`
    negate: bool = False


@dataclass(frozen=True, slots=True)
class Params:
    action: str  # "*", "INSERT", "UPDATE" or "DELETE"
    schema: str
    table: str
    conditions: tuple[Condition, ...] = ()
    select: tuple[str, ...] | None = None

    def log_text(self) -> str:
        """Realtime's ``params_to_log``: ``[event: *, schema: public, table: t, filters: [...], select: nil]``."""
        filters = [(c.column, c.op, c.value, c.negate) for c in self.conditions]
        select = "nil" if self.select is None else inspect(list(self.select))
        where = f"event: {self.action}, schema: {self.schema}, table: {self.table}"
        return f"[{where}, filters: {inspect(filters)}, select: {select}]"


# --- Elixir's inspect, for the texts Realtime builds with it -----------------------------------


def inspect(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _inspect_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(inspect(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "{" + ", ".join(inspect(v) for v in value) + "}"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: str(kv[0]).encode())
        return "%{" + ", ".join(f"{inspect(k)} => {inspect(v)}" for k, v in items) + "}"
    return json.dumps(value)


def _inspect_string(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    return '"' + "".join(escapes.get(ch, ch) for ch in text).replace("#{", "\\#{") + '"'


# --- parsing (subscriptions.ex) -------------------------------------------------------------------


def parse_params(params: Mapping[str, Any]) -> Params:
    """A binding's parameters, or ``FilterError`` with Realtime's text."""
    action = _action(params.get("event"))
    select = _select(params)
    schema, table, text = params.get("schema"), params.get("table"), params.get("filter")
    if isinstance(schema, str) and isinstance(table, str) and isinstance(text, str):
        return _ok(action, schema, table, parse_filter(text), select)
    if isinstance(schema, str) and isinstance(table, str) and "filter" not in params:
        return _ok(action, schema, table, (), select)
    if isinstance(schema, str) and "table" not in params and "filter" not in params:
        return _ok(action, schema, "*", (), select)
    if isinstance(table, str) and "schema" not in params and "filter" not in params:
        return _ok(action, "public", table, (), select)
    if "user_token" in params or "auth_token" in params:
        raise FilterError(NO_PARAMS + "<redacted>")
    raise FilterError(NO_PARAMS + inspect(dict(params)))


def _action(event: Any) -> str:
    if isinstance(event, str) and event.upper() in ("INSERT", "UPDATE", "DELETE"):
        return event.upper()
    return "*"


def _select(params: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = params.get("select")
    if isinstance(value, str):
        raise FilterError(SELECT_NOT_A_LIST)
    if isinstance(value, list):
        names = tuple(v for v in value if isinstance(v, str))
        return names or None
    return None


def _ok(action: str, schema: str, table: str, conditions: Sequence[Condition], select: Any) -> Params:
    if select is not None and "*" in (schema, table):
        raise FilterError(SELECT_ON_WILDCARD)
    return Params(action, schema, table, tuple(conditions), select)


def parse_filter(text: str) -> tuple[Condition, ...]:
    """``col=[not.]op.value[,…]``; ``FilterError`` (``Error parsing `filter` params: …``) when unreadable."""
    if not text.strip():
        return ()
    try:
        return tuple(_segment(part) for part in split_top_level(text.strip()))
    except ValueError as exc:
        raise FilterError(f"Error parsing `filter` params: {exc}") from None


def split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and double quotes (a quote opens only after `.`, `(` or `,`)."""
    parts, current, depth, quoted, prev, i = [], "", 0, False, "", 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\" and i + 1 < len(text):
            current, prev, i = current + text[i : i + 2], text[i + 1], i + 2
            continue
        if quoted:
            quoted = ch != '"'
        elif ch == '"' and prev in (".", "(", ","):
            quoted = True
        elif ch in "()":
            depth = depth + 1 if ch == "(" else max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(current)
            current, prev, i = "", "", i + 1
            continue
        current, prev, i = current + ch, ch, i + 1
    return [*parts, current]


def _segment(segment: str) -> Condition:
    trimmed = segment.strip()
    if not trimmed:
        raise ValueError("filter must not contain empty segments (check for extra commas)")
    column, sep, rest = trimmed.partition("=")
    if not sep:
        raise ValueError(inspect([trimmed]))
    negate = rest.startswith("not.")
    op_value = rest.removeprefix("not.")
    op, dot, value = op_value.partition(".")
    if not dot:
        raise ValueError(inspect([op_value]))
    if op not in OPERATORS:
        raise ValueError(inspect([op, value]))
    return Condition(column, op, _format_value(op, value), negate)


def _format_value(op: str, value: str) -> str:
    if op == "in":
        if len(value) < 2 or not (value.startswith("(") and value.endswith(")")):
            raise ValueError("`in` filter value must be wrapped by parentheses")
        return "{" + value[1:-1] + "}"
    return _unquote(value)


def _unquote(value: str) -> str:
    """A value wholly in double quotes loses them (backslash escapes one character); anything else stays."""
    if not value.startswith('"'):
        return value
    out, i = "", 1
    while i < len(value):
        ch = value[i]
        if ch == '"':
            return out if i == len(value) - 1 else value
        if ch == "\\" and i + 1 < len(value):
            out, i = out + value[i + 1], i + 2
            continue
        out, i = out + ch, i + 1
    return value


# --- the subscription trigger (realtime.subscription_check_filters) ----------------------------


def check(params: Params, columns: Mapping[str, str]) -> None:
    """Refuse what the trigger refuses for a table with ``columns`` (name -> typname): ``PgError``."""
    for condition in params.conditions:
        typname = columns.get(condition.column)
        if typname is None:
            raise _raised(f"invalid column for filter {condition.column}")
        _check_condition(condition, typname)
    for name in params.select or ():
        if name not in columns:
            raise _raised(f"invalid column for select {name}")


def _check_condition(condition: Condition, typname: str) -> None:
    op, value, regtype = condition.op, condition.value, REGTYPES.get(typname, typname)
    if op == "in":
        values = array_items(value)
        if len(values) > MAX_IN_VALUES:
            raise _raised(f"too many values for `in` filter. Maximum {MAX_IN_VALUES}")
        for item in values:
            cast(item, typname)
    elif op == "is":
        if value not in IS_VALUES:
            raise _raised("invalid value for is filter: must be null, true, false, or unknown")
        if value != "null" and typname != "bool":
            raise _raised(f"is {value} filter requires a boolean column, got {regtype}")
    elif op in ("like", "ilike", "match", "imatch"):
        if typname not in (LIKE_TYPES if op in ("like", "ilike") else REGEX_TYPES):
            raise _raised(f"operator {op} requires a text-compatible column type, got {regtype}")
        if op in ("match", "imatch"):
            _compile_regex(op, value)
    else:
        cast(value, typname)


def _compile_regex(op: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE if op == "imatch" else 0)
    except re.error as exc:
        reason = _REGEX_REASONS.get(exc.msg, exc.msg)
        raise _raised(f"invalid regular expression for {op} filter: invalid regular expression: {reason}") from None


_REGEX_REASONS = {
    "missing ), unterminated subpattern": "parentheses () not balanced",
    "unbalanced parenthesis": "parentheses () not balanced",
    "unterminated character set": "brackets [] not balanced",
    "nothing to repeat": "quantifier operand invalid",
    "multiple repeat": "quantifier operand invalid",
}


def array_items(literal: str) -> list[str]:
    """The elements of a Postgres array literal ``{a,"b,c"}`` (what ``in.(…)`` becomes)."""
    items: list[str] = []
    current, quoted, escaped, was_quoted = "", False, False, False
    for ch in literal[1:-1]:
        if escaped:
            current, escaped = current + ch, False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted, was_quoted = not quoted, True
        elif ch == "," and not quoted:
            items.append(current if was_quoted else current.strip())
            current, was_quoted = "", False
        else:
            current += ch
    if current.strip() or was_quoted or items:
        items.append(current if was_quoted else current.strip())
    return items


# --- matching (realtime.is_visible_through_filters / check_equality_op) -----------------------


def visible_through_filters(conditions: Iterable[Condition], row: Mapping[str, Any], types: Mapping[str, str]) -> bool:
    """Every condition names a column of ``row`` and holds; no condition at all passes everything."""
    for condition in conditions:
        if condition.column not in row:
            return False
        typname = types.get(condition.column, "text")
        try:
            if not holds(condition, column_value(row[condition.column], typname), typname):
                return False
        except PgError:  # checked at subscribe time; a table whose types changed since fails closed
            return False
    return True


def holds(condition: Condition, actual: Any, typname: str) -> bool:
    """One condition on one value; SQL's NULL (``None`` result) counts as not visible, negated or not."""
    result = _compare(condition.op, actual, condition.value, typname)
    if result is None:
        return False
    return result != condition.negate


def _compare(op: str, actual: Any, value: str, typname: str) -> bool | None:
    if op == "is":
        return _is(actual, value)
    if op == "isdistinct":
        return actual is None or actual != cast(value, typname)
    if actual is None:
        return None
    if op == "in":
        return actual in [cast(item, typname) for item in array_items(value)]
    if op in ("like", "ilike"):
        return like(str(actual), value, case_insensitive=op == "ilike")
    if op in ("match", "imatch"):
        return _compile_regex(op, value).search(str(actual)) is not None
    return _ordered(op, actual, cast(value, typname))


def _is(actual: Any, value: str) -> bool:
    if value in ("null", "unknown"):
        return actual is None
    return actual is (value == "true")


def _ordered(op: str, left: Any, right: Any) -> bool | None:
    try:
        return {
            "eq": lambda: left == right,
            "neq": lambda: left != right,
            "lt": lambda: left < right,
            "lte": lambda: left <= right,
            "gt": lambda: left > right,
            "gte": lambda: left >= right,
        }[op]()
    except TypeError:  # jsonb objects have an order in Postgres that is not reproduced here
        return None
