from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PreviewSessionsConfig(AppConfig):
    # django.contrib.sessions owns the label "sessions".
    name = "sessions"
    label = "preview_sessions"
    verbose_name = "Preview sessions"

    def ready(self) -> None:
        from realtime_bridge import events, policies
        from sessions import schema  # noqa: F401  (registers the schema's authentication extensions)
        from sessions.access import project_channel_allowed
        from sessions.supabase import on_post_migrate

        policies.register(events.PROJECT_TOPIC_PREFIX, project_channel_allowed)
        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="velocity-supabase-lock-down")
