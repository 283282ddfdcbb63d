from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PreviewSessionsConfig(AppConfig):
    # django.contrib.sessions owns the label "sessions".
    name = "sessions"
    label = "preview_sessions"
    verbose_name = "Preview sessions"

    def ready(self) -> None:
        # Imported here: models are ready only now. Registering tells the lower layers about sessions.
        from machines.signals import machines_lost
        from realtime_bridge import events, observers, policies, tables
        from sessions import schema  # noqa: F401  (registers the schema's authentication extensions)
        from sessions.access import project_channel_allowed, user_channel_allowed
        from sessions.changes import TABLE, session_columns, session_row_visible
        from sessions.selectors import live_project_topics
        from sessions.services.activity import activity_observe
        from sessions.services.lifecycle import on_machines_lost
        from sessions.services.traces import trace_observe
        from sessions.supabase import on_post_migrate

        policies.register(events.PROJECT_TOPIC_PREFIX, project_channel_allowed)
        policies.register(events.USER_TOPIC_PREFIX, user_channel_allowed)
        policies.register_mirrored_topics(live_project_topics)
        observers.register(trace_observe)
        observers.register(activity_observe)
        tables.register(schema="public", table=TABLE, visible=session_row_visible, columns=session_columns)
        machines_lost.connect(on_machines_lost, dispatch_uid="velocity-sessions-end-on-machines-lost")
        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="velocity-supabase-lock-down")
