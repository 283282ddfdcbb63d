"""JSON from the outside world, refused when it would break later instead of now.

``json.loads`` accepts two things that fail far from the parser: nesting deep enough to raise
``RecursionError`` (a 500, or a websocket closed with 1011), and ``\\ud800``-style escapes that decode
to lone surrogates, which no UTF-8 encoder (a websocket frame, PostgreSQL, SQLite) will take back.
``loads`` refuses both with ``MalformedJSON``, a ``ValueError`` like the parser's own errors, so
callers that already catch ``ValueError`` treat them as the invalid JSON they are.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Deep enough for any payload we serve, shallow enough that re-encoding it never nears the
# interpreter's recursion limit from inside a request or a consumer's stack.
MAX_DEPTH = 200

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


class MalformedJSON(ValueError):
    """Syntactically valid JSON that we refuse: too deep, or text that is not Unicode."""


def loads(data: str | bytes | bytearray, *, unicode_only: bool = True, **options: Any) -> Any:
    """``json.loads`` that raises ``ValueError`` (never ``RecursionError``) for anything unusable.

    ``unicode_only=False`` leaves the surrogate check to a caller that wants to read the value first.
    """
    try:
        value = json.loads(data, **options)
    except RecursionError as exc:
        raise MalformedJSON(f"nested deeper than {MAX_DEPTH} levels") from exc
    if _may_nest(data) and _depth_exceeds(value, MAX_DEPTH):
        raise MalformedJSON(f"nested deeper than {MAX_DEPTH} levels")
    if unicode_only and may_hold_surrogates(data) and not is_unicode(value):
        raise MalformedJSON("a string holds a lone surrogate (\\ud800-\\udfff)")
    return value


def is_unicode(value: Any) -> bool:
    """Whether every string in ``value`` encodes to UTF-8 (lone surrogates do not)."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _may_nest(data: str | bytes | bytearray) -> bool:
    # Counting brackets is C-speed and rules out almost every payload before any walk.
    if isinstance(data, str):
        return data.count("[") + data.count("{") > MAX_DEPTH
    return data.count(b"[") + data.count(b"{") > MAX_DEPTH


def may_hold_surrogates(data: str | bytes | bytearray) -> bool:
    """Whether decoding ``data`` can produce a lone surrogate (cheap: most text has no such escape)."""
    # A decoded str or UTF-8 bytes cannot carry a surrogate themselves: only an escape produces one.
    if isinstance(data, str):
        return _SURROGATE_ESCAPE.search(data) is not None
    return _SURROGATE_ESCAPE_BYTES.search(data) is not None


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative, so measuring the depth cannot itself recurse too deeply."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in node)
    return False
