"""Supabase: `project:{id}` channels for the project's owner, members and agent only (replaces 0005's rule).

Applied only on a Supabase Postgres (an ``auth`` schema and a ``supabase_realtime`` publication), like 0005.

0005 let a user into ``project:{id}`` while they had a live session of it, and any token carrying a
``velocity_project`` claim. Now two policies on ``realtime.messages`` follow the orchestrator's own rule
(``sessions.access.project_access``): reading (SELECT: join, presence) for the owner, editors and viewers,
writing (INSERT: broadcast, track) for the owner and editors; the project's preview agent (a key with the
``velocity_agent`` audience, for that project, whose machine is not being destroyed) may do both; the
service role everything. Two SECURITY DEFINER functions answer from the orchestrator's tables, which
``authenticated`` cannot read itself. With ``PROJECT_ACCESS_BACKEND=supabase`` the user function instead
asks the frontend's projects table as the caller (SECURITY INVOKER), so its own RLS decides, as the API does.
"""

from django.conf import settings
from django.db import migrations

READ_POLICY = "Velocity project channel: read"
WRITE_POLICY = "Velocity project channel: write"
OLD_POLICY = "Velocity project channel: owner, its agent, service role"
OLD_RULE = """
    (auth.jwt() ->> 'role') = 'service_role'
    OR (
      realtime.topic() LIKE 'project:%'
      AND (
        (auth.jwt() ->> 'velocity_project') = substr(realtime.topic(), 9)
        OR EXISTS (
          SELECT 1 FROM public.preview_sessions s
          WHERE s.user_id = auth.uid()
            AND s.project_id = substr(realtime.topic(), 9)
            AND s.status IN ('creating', 'active')
        )
      )
    )
"""

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


def _rule(write: bool) -> str:
    return (
        "(auth.jwt() ->> 'role') = 'service_role' OR (realtime.topic() LIKE 'project:%' AND ("
        "public.velocity_agent_may_use(substr(realtime.topic(), 9))"
        f" OR public.velocity_user_may_use(substr(realtime.topic(), 9), {'true' if write else 'false'})))"
    )


def _user_function(schema_editor) -> str:  # type: ignore[no-untyped-def]
    if getattr(settings, "PROJECT_ACCESS_BACKEND", "registry") != "supabase":
        return REGISTRY_FUNCTION
    quote = schema_editor.connection.ops.quote_name
    table = ".".join(quote(part) for part in settings.PROJECT_ACCESS_SUPABASE_TABLE.split("."))
    return SUPABASE_FUNCTION.format(table=table, column=quote(settings.PROJECT_ACCESS_SUPABASE_ID_COLUMN))


def _applies(cursor) -> bool:  # type: ignore[no-untyped-def]
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'auth')"
        " AND EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime')"
        " AND to_regclass('realtime.messages') IS NOT NULL"
    )
    return bool(cursor.fetchone()[0])


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if not _applies(cursor):
            return
        cursor.execute(AGENT_FUNCTION)
        cursor.execute(_user_function(schema_editor))
        for policy in (OLD_POLICY, READ_POLICY, WRITE_POLICY):
            cursor.execute(f'DROP POLICY IF EXISTS "{policy}" ON realtime.messages')
        cursor.execute(f'CREATE POLICY "{READ_POLICY}" ON realtime.messages FOR SELECT USING ({_rule(False)})')
        cursor.execute(f'CREATE POLICY "{WRITE_POLICY}" ON realtime.messages FOR INSERT WITH CHECK ({_rule(True)})')


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if not _applies(cursor):
            return
        for policy in (READ_POLICY, WRITE_POLICY):
            cursor.execute(f'DROP POLICY IF EXISTS "{policy}" ON realtime.messages')
        cursor.execute("DROP FUNCTION IF EXISTS public.velocity_user_may_use(text, boolean)")
        cursor.execute("DROP FUNCTION IF EXISTS public.velocity_agent_may_use(text)")
        cursor.execute(
            f'CREATE POLICY "{OLD_POLICY}" ON realtime.messages FOR ALL USING ({OLD_RULE}) WITH CHECK ({OLD_RULE})'
        )


class Migration(migrations.Migration):
    dependencies = [("preview_sessions", "0006_projects"), ("machines", "0003_audit_actor_label")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
