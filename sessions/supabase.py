"""On a Supabase database, the orchestrator's tables are closed to the project's Data API.

Supabase grants ``anon`` and ``authenticated`` every privilege on new tables in ``public`` by default, and
PostgREST serves whatever they may read: machine token hashes, quotas, audit records, the registry, the
operators' password hashes. After every ``migrate`` (new tables included) each table of ours gets row-level
security with no policy and loses those roles' privileges. ``preview_sessions`` keeps the seed's policies and
``SELECT`` (users read their own rows, and Realtime's ``postgres_changes`` needs it) but not writes: a user
must not move their session's ``expires_at`` or point it at another machine through the Data API.
The orchestrator connects as the tables' owner, which row-level security does not restrict.

The ``project:`` channel policies (migration 0007) call two functions defined here; they are installed again
after every ``migrate``, so a change of ``PROJECT_ACCESS_BACKEND`` (or its table) reaches Supabase with the
next deploy's release command.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

DATA_API_ROLES = ("anon", "authenticated")

AGENT_FUNCTION = """
CREATE OR REPLACE FUNCTION public.velocity_agent_may_use(project text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT coalesce(auth.jwt() ->> 'aud', '') = 'velocity_agent'
    AND (auth.jwt() ->> 'velocity_project') = project
    AND EXISTS (
      SELECT 1 FROM public.machines_machine m
      WHERE m.id::text = (auth.jwt() ->> 'velocity_machine')
        AND m.state NOT IN ('destroying', 'destroyed', 'failed')
    )
$$
"""

REGISTRY_FUNCTION = """
CREATE OR REPLACE FUNCTION public.velocity_user_may_use(project text, write boolean) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
  SELECT coalesce(auth.jwt() ->> 'aud', '') <> 'velocity_agent' AND EXISTS (
    SELECT 1 FROM public.preview_projects p
    WHERE p.project_id = project
      AND (
        p.owner_id = auth.uid()
        OR EXISTS (
          SELECT 1 FROM public.preview_project_members pm
          WHERE pm.project_id = p.id AND pm.user_id = auth.uid() AND (NOT write OR pm.role = 'editor')
        )
      )
  )
$$
"""

# The frontend's table, read as the caller: its policies decide (a row means full access, as in the API).
SUPABASE_FUNCTION = """
CREATE OR REPLACE FUNCTION public.velocity_user_may_use(project text, write boolean) RETURNS boolean
LANGUAGE sql STABLE SECURITY INVOKER SET search_path = public, pg_temp AS $$
  SELECT coalesce(auth.jwt() ->> 'aud', '') <> 'velocity_agent'
    AND EXISTS (SELECT 1 FROM {table} t WHERE t.{column}::text = project)
$$
"""


def _user_function(quote_name: Callable[[str], str]) -> str:
    if settings.PROJECT_ACCESS_BACKEND != "supabase":
        return REGISTRY_FUNCTION
    table = ".".join(quote_name(part) for part in settings.PROJECT_ACCESS_SUPABASE_TABLE.split("."))
    return SUPABASE_FUNCTION.format(table=table, column=quote_name(settings.PROJECT_ACCESS_SUPABASE_ID_COLUMN))


def channel_functions_install(cursor: Any, *, quote_name: Callable[[str], str]) -> None:
    """The two functions the ``project:`` channel policies call, for the access backend configured now."""
    cursor.execute(AGENT_FUNCTION)
    cursor.execute(_user_function(quote_name))


def _channel_functions_installed(cursor: Any) -> bool:
    cursor.execute("SELECT to_regprocedure('public.velocity_user_may_use(text, boolean)') IS NOT NULL")
    return bool(cursor.fetchone()[0])


SESSIONS_TABLE = "preview_sessions"


def is_supabase(cursor: Any) -> bool:
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'auth')"
        " AND EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime')"
    )
    return bool(cursor.fetchone()[0])


def has_realtime_policies(cursor: Any) -> bool:
    """A Supabase database whose Realtime keeps ``realtime.messages``: where channel policies go."""
    if not is_supabase(cursor):
        return False
    cursor.execute("SELECT to_regclass('realtime.messages') IS NOT NULL")
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
        if _channel_functions_installed(cursor):
            channel_functions_install(cursor, quote_name=connection.ops.quote_name)
    logger.info("supabase tables closed to the data api", extra={"tables": len(tables)})
    return tables


def on_post_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    tables_lock_down(using=using)
