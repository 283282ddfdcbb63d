from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Imported here: services import models, which need the app registry ready.
        from realtime_bridge import listeners
        from webhooks import checks  # noqa: F401  (registers the system checks)
        from webhooks.services import webhook_event_receive, webhook_events_receive

        listeners.register(webhook_event_receive, many=webhook_events_receive)
