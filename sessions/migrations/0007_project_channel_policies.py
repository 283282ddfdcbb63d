"""Supabase: `project:{id}` channels for the project's owner, members and agent only (replaces 0005's rule).

Applied only on a Supabase Postgres (an ``auth`` schema and a ``supabase_realtime`` publication), like 0005.

0005 let a user into ``project:{id}`` while they had a live session of it, and any token carrying a
``velocity_project`` claim. Now two policies on ``realtime.messages`` follow the orchestrator's own rule
(``sessions.access.project_access``): reading (SELECT: join, presence) for the owner, editors and viewers,
writing (INSERT: broadcast, track) for the owner and editors; the project's preview agent (a key with the
``velocity_agent`` audience, for that project, whose machine is not being destroyed) may do both; the
service role everything. Two SECURITY DEFINER functions answer from the orchestrator's tables, which
``authenticated`` cannot read itself (``sessions.supabase``; every later ``migrate`` installs them again from
the settings of the day). With ``PROJECT_ACCESS_BACKEND=supabase`` the user function instead asks the
frontend's projects table as the caller (SECURITY INVOKER), so its own RLS decides, as the API does.
"""

from django.db import migrations

from sessions.supabase import channel_functions_install, has_realtime_policies

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


def _rule(write: bool) -> str:
    return (
        "(auth.jwt() ->> 'role') = 'service_role' OR (realtime.topic() LIKE 'project:%' AND ("
        "public.velocity_agent_may_use(substr(realtime.topic(), 9))"
        f" OR public.velocity_user_may_use(substr(realtime.topic(), 9), {'true' if write else 'false'})))"
    )


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if not has_realtime_policies(cursor):
            return
        channel_functions_install(cursor, quote_name=schema_editor.connection.ops.quote_name)
        for policy in (OLD_POLICY, READ_POLICY, WRITE_POLICY):
            cursor.execute(f'DROP POLICY IF EXISTS "{policy}" ON realtime.messages')
        cursor.execute(f'CREATE POLICY "{READ_POLICY}" ON realtime.messages FOR SELECT USING ({_rule(False)})')
        cursor.execute(f'CREATE POLICY "{WRITE_POLICY}" ON realtime.messages FOR INSERT WITH CHECK ({_rule(True)})')


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if not has_realtime_policies(cursor):
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
