"""A named lock that at most one orchestrator instance holds at a time, for jobs that must not double-run."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

from django.db import connection


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def instance_lock(name: str) -> Iterator[bool]:
    """Yield True when this instance holds ``name`` (a PostgreSQL session advisory lock), False when another does.

    SQLite is the embedded, single-instance mode: there is nobody to exclude, so the lock is always held.
    """
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_key(name)])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_key(name)])
