from django.apps import AppConfig


class RealtimeBridgeConfig(AppConfig):
    name = "realtime_bridge"
    verbose_name = "Realtime"

    def ready(self) -> None:
        from realtime_bridge import checks  # noqa: F401  (registers the system checks)
