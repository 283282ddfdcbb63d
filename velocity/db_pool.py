"""The web process's PostgreSQL connection pool (``DATABASE_POOL``, velocity/settings.py): what waits long gives
its connection back."""

from __future__ import annotations

from django.conf import settings
from django.db import connection


def release_if_pooled() -> None:
    """Give this thread's pooled connection back to the pool, between the checks of a long wait (a warm agent's
    held assignment poll waits up to 25 s): the pool's connections serve requests, not sleepers. Without a pool
    closing would cost a new connection at the next check, so nothing is done; nor inside a transaction."""
    if settings.DATABASE_POOL and not connection.in_atomic_block:
        connection.close()
