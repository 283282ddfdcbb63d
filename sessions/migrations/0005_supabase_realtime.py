"""Supabase database objects (seed §5.1), applied only when the database is a Supabase Postgres.

A Supabase Postgres is recognised by its ``auth`` schema and its ``supabase_realtime`` publication; on
any other database (SQLite, a plain PostgreSQL) both directions do nothing.

Forward: row-level security on ``preview_sessions`` with the seed's two policies, the table added to the
``supabase_realtime`` publication (for ``postgres_changes``), and a policy on ``realtime.messages`` so that
a private ``project:{id}`` channel is usable only by the project's owner (a user with a live session of it,
the same rule as the embedded endpoint's ``channel_authorize``), the project's preview agent (a token
carrying ``velocity_project``) and the service role. Backward removes exactly those objects.

The orchestrator connects as the table's owner, which row-level security does not restrict.
The seed's ``cleanup_expired_sessions`` SQL function and its pg_cron job are not created: the
``cleanup_expired_sessions`` django-q2 schedule does that job on every database.
"""

from django.db import migrations

OWN_SESSIONS = "Users can access own sessions"
SERVICE_SESSIONS = "Service role can manage sessions"
CHANNEL_POLICY = "Velocity project channel: owner, its agent, service role"

CHANNEL_RULE = """
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


def _is_supabase(cursor) -> bool:  # type: ignore[no-untyped-def]
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'auth')"
        " AND EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'supabase_realtime')"
    )
    return bool(cursor.fetchone()[0])


def _exists(cursor, sql: str) -> bool:  # type: ignore[no-untyped-def]
    cursor.execute(sql)
    return bool(cursor.fetchone()[0])


def _in_publication(cursor) -> bool:  # type: ignore[no-untyped-def]
    return _exists(
        cursor,
        "SELECT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = 'supabase_realtime'"
        " AND schemaname = 'public' AND tablename = 'preview_sessions')",
    )


def _has_messages(cursor) -> bool:  # type: ignore[no-untyped-def]
    return _exists(cursor, "SELECT to_regclass('realtime.messages') IS NOT NULL")


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if not _is_supabase(cursor):
            return
        cursor.execute("ALTER TABLE public.preview_sessions ENABLE ROW LEVEL SECURITY")
        cursor.execute(f'DROP POLICY IF EXISTS "{OWN_SESSIONS}" ON public.preview_sessions')
        cursor.execute(
            f'CREATE POLICY "{OWN_SESSIONS}" ON public.preview_sessions FOR ALL USING (auth.uid() = user_id)'
        )
        cursor.execute(f'DROP POLICY IF EXISTS "{SERVICE_SESSIONS}" ON public.preview_sessions')
        cursor.execute(
            f'CREATE POLICY "{SERVICE_SESSIONS}" ON public.preview_sessions'
            " FOR ALL USING (auth.jwt() ->> 'role' = 'service_role')"
        )
        all_tables = _exists(cursor, "SELECT puballtables FROM pg_publication WHERE pubname = 'supabase_realtime'")
        if not all_tables and not _in_publication(cursor):
            cursor.execute("ALTER PUBLICATION supabase_realtime ADD TABLE public.preview_sessions")
        if _has_messages(cursor):
            cursor.execute(f'DROP POLICY IF EXISTS "{CHANNEL_POLICY}" ON realtime.messages')
            cursor.execute(
                f'CREATE POLICY "{CHANNEL_POLICY}" ON realtime.messages FOR ALL'
                f" USING ({CHANNEL_RULE}) WITH CHECK ({CHANNEL_RULE})"
            )


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if not _is_supabase(cursor):
            return
        if _has_messages(cursor):
            cursor.execute(f'DROP POLICY IF EXISTS "{CHANNEL_POLICY}" ON realtime.messages')
        if _in_publication(cursor) and not _exists(
            cursor, "SELECT puballtables FROM pg_publication WHERE pubname = 'supabase_realtime'"
        ):
            cursor.execute("ALTER PUBLICATION supabase_realtime DROP TABLE public.preview_sessions")
        cursor.execute(f'DROP POLICY IF EXISTS "{SERVICE_SESSIONS}" ON public.preview_sessions')
        cursor.execute(f'DROP POLICY IF EXISTS "{OWN_SESSIONS}" ON public.preview_sessions')
        cursor.execute("ALTER TABLE public.preview_sessions DISABLE ROW LEVEL SECURITY")


class Migration(migrations.Migration):
    dependencies = [("preview_sessions", "0004_preview_flags")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
