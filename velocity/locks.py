"""Named PostgreSQL advisory locks, derived one way: a lock one orchestrator instance holds at a time (jobs
that must not double-run), and a lock held until the transaction ends (serializing one user's creates)."""

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


def transaction_lock(name: str) -> None:
    """Wait for ``name`` and hold it until the current transaction ends (PostgreSQL).

    SQLite's IMMEDIATE transactions already serialize writers, so there it is a no-op.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_key(name)])
