"""On a Supabase database, the orchestrator's tables are closed to the project's Data API.

Supabase grants ``anon`` and ``authenticated`` every privilege on new tables in ``public`` by default, and
PostgREST serves whatever they may read: machine token hashes, quotas, audit records, the registry, the
operators' password hashes. After every ``migrate`` (new tables included) each table of ours gets row-level
security with no policy and loses those roles' privileges. ``preview_sessions`` keeps the seed's policies and
``SELECT`` (users read their own rows, and Realtime's ``postgres_changes`` needs it) but not writes: a user
must not move their session's ``expires_at`` or point it at another machine through the Data API.
The orchestrator connects as the tables' owner, which row-level security does not restrict.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import connections

logger = logging.getLogger(__name__)

DATA_API_ROLES = ("anon", "authenticated")
SESSIONS_TABLE = "preview_sessions"


def is_supabase(cursor: Any) -> bool:
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'auth')"
        " AND EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime')"
    )
    return bool(cursor.fetchone()[0])


def _roles(cursor: Any) -> str:
    cursor.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname", [list(DATA_API_ROLES)])
    return ", ".join(f'"{name}"' for (name,) in cursor.fetchall())


def _close(cursor: Any, table: str, roles: str) -> None:
    quoted = f'public."{table}"'
    if table == SESSIONS_TABLE:
        if roles:
            cursor.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {quoted} FROM {roles}")
        return
    cursor.execute(f"ALTER TABLE {quoted} ENABLE ROW LEVEL SECURITY")
    if roles:
        cursor.execute(f"REVOKE ALL ON {quoted} FROM {roles}")


def tables_lock_down(*, using: str = "default") -> list[str]:
    """Close every table of ours to the Data API roles; returns the tables it closed (none off Supabase)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        if not is_supabase(cursor):
            return []
        ours = connection.introspection.django_table_names(only_existing=True, include_views=False)
        tables = sorted({*ours, "django_migrations"})
        roles = _roles(cursor)
        for table in tables:
            _close(cursor, table, roles)
    logger.info("supabase tables closed to the data api", extra={"tables": len(tables)})
    return tables


def on_post_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    tables_lock_down(using=using)
