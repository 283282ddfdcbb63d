"""Supabase: a user may read their own ``user:{sub}`` channel (their sessions' status), nobody else's.

Applied only on a Supabase Postgres, like 0005 and 0007. Reading only: nobody but the service role may
broadcast or track on a user's channel (0007's policies already let the service role do everything).
"""

from django.db import migrations

POLICY = "Velocity user channel: read"
RULE = (
    "(auth.jwt() ->> 'role') = 'authenticated'"
    " AND coalesce(auth.jwt() ->> 'aud', '') <> 'velocity_agent'"
    " AND realtime.topic() = 'user:' || (auth.jwt() ->> 'sub')"
)


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
        if _applies(cursor):
            cursor.execute(f'DROP POLICY IF EXISTS "{POLICY}" ON realtime.messages')
            cursor.execute(f'CREATE POLICY "{POLICY}" ON realtime.messages FOR SELECT USING ({RULE})')


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if _applies(cursor):
            cursor.execute(f'DROP POLICY IF EXISTS "{POLICY}" ON realtime.messages')


class Migration(migrations.Migration):
    dependencies = [("preview_sessions", "0007_project_channel_policies")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
