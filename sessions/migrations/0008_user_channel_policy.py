"""Supabase: a user may read their own ``user:{sub}`` channel (their sessions' status), nobody else's.

Applied only on a Supabase Postgres, like 0005 and 0007. Reading only: nobody but the service role may
broadcast or track on a user's channel (0007's policies already let the service role do everything).
"""

from django.db import migrations

from sessions.supabase import has_realtime_policies

POLICY = "Velocity user channel: read"
RULE = (
    "(auth.jwt() ->> 'role') = 'authenticated'"
    " AND coalesce(auth.jwt() ->> 'aud', '') <> 'velocity_agent'"
    " AND realtime.topic() = 'user:' || (auth.jwt() ->> 'sub')"
)


def forward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if has_realtime_policies(cursor):
            cursor.execute(f'DROP POLICY IF EXISTS "{POLICY}" ON realtime.messages')
            cursor.execute(f'CREATE POLICY "{POLICY}" ON realtime.messages FOR SELECT USING ({RULE})')


def backward(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if has_realtime_policies(cursor):
            cursor.execute(f'DROP POLICY IF EXISTS "{POLICY}" ON realtime.messages')


class Migration(migrations.Migration):
    dependencies = [("preview_sessions", "0007_project_channel_policies")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
