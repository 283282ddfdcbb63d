"""Postgres values for `postgres_changes` filters (pure functions): a filter's text cast to its column's type
(``text::type``, with Postgres's own error messages), a row's JSON value read as that type, and SQL ``LIKE``.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

# typname -> the regtype text Postgres shows in its messages.
REGTYPES = {
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "numeric": "numeric",
    "float4": "real",
    "float8": "double precision",
    "bool": "boolean",
    "text": "text",
    "varchar": "character varying",
    "bpchar": "character",
    "name": "name",
    "uuid": "uuid",
    "timestamptz": "timestamp with time zone",
    "jsonb": "jsonb",
    "json": "json",
}
_INT_RANGES = {"int2": 2**15, "int4": 2**31, "int8": 2**63}


class PgError(Exception):
    """A Postgres error as Postgrex formats it: ``ERROR <code> (<name>) <message>``."""

    def __init__(self, code: str, name: str, message: str) -> None:
        super().__init__(f"ERROR {code} ({name}) {message}")


def _syntax(typname: str, text: str) -> PgError:
    code, name = (
        ("22007", "invalid_datetime_format") if typname == "timestamptz" else ("22P02", "invalid_text_representation")
    )
    return PgError(code, name, f'invalid input syntax for type {REGTYPES.get(typname, typname)}: "{text}"')


_TRUE = ("t", "tr", "tru", "true", "y", "ye", "yes", "on", "1")
_FALSE = ("f", "fa", "fal", "fals", "false", "n", "no", "of", "off", "0")


def cast(text: str, typname: str) -> Any:
    """``text::type`` as Postgres reads it (a comparable Python value), or ``PgError`` with its message."""
    if typname in _INT_RANGES:
        return _cast_int(text, typname)
    if typname in ("numeric", "float4", "float8"):
        return _cast_number(text, typname)
    if typname == "bool":
        word = text.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise _syntax(typname, text)
    if typname == "uuid":
        try:
            return uuid.UUID(text.strip())
        except ValueError:
            raise _syntax(typname, text) from None
    if typname == "timestamptz":
        return _cast_timestamp(text)
    if typname in ("json", "jsonb"):
        try:
            return json.loads(text)
        except ValueError:
            raise PgError("22P02", "invalid_text_representation", "invalid input syntax for type json") from None
    return text


def _cast_int(text: str, typname: str) -> int:
    if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
        raise _syntax(typname, text)
    number, bound = int(text), _INT_RANGES[typname]
    if not -bound <= number < bound:
        raise PgError(
            "22003", "numeric_value_out_of_range", f'value "{text}" is out of range for type {REGTYPES[typname]}'
        )
    return number


def _cast_number(text: str, typname: str) -> Decimal:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        raise _syntax(typname, text) from None
    if number.is_snan() or not text.strip():
        raise _syntax(typname, text)
    return number


def _cast_timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise _syntax("timestamptz", text) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def column_value(raw: Any, typname: str) -> Any:
    """A row's JSON value as its column's type; ``None`` for NULL (``value #>> '{}'`` then the cast)."""
    if raw is None:
        return None
    if typname in ("json", "jsonb"):
        return raw
    if isinstance(raw, bool):
        text = "true" if raw else "false"
    elif isinstance(raw, str):
        text = raw
    else:
        text = json.dumps(raw)
    try:
        return cast(text, typname)
    except PgError:
        return text


def like(text: str, pattern: str, *, case_insensitive: bool = False) -> bool:
    """SQL ``LIKE``: ``%`` any run, ``_`` one character, ``\\`` escapes the next; the whole text must match."""
    return _like_regex(pattern, case_insensitive).fullmatch(text) is not None


@functools.lru_cache(maxsize=1024)
def _like_regex(pattern: str, case_insensitive: bool) -> re.Pattern[str]:
    regex, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            regex, i = regex + re.escape(pattern[i + 1]), i + 2
            continue
        regex += {"%": ".*", "_": "."}.get(ch, re.escape(ch))
        i += 1
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if case_insensitive else 0))
