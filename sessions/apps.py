from django.apps import AppConfig


class PreviewSessionsConfig(AppConfig):
    # django.contrib.sessions owns the label "sessions".
    name = "sessions"
    label = "preview_sessions"
    verbose_name = "Preview sessions"
