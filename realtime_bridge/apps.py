from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class RealtimeBridgeConfig(AppConfig):
    name = "realtime_bridge"
    verbose_name = "Realtime"

    def ready(self) -> None:
        from realtime_bridge import changes

        sender = "preview_sessions.PreviewSession"
        post_save.connect(changes.on_session_saved, sender=sender, dispatch_uid="rt-session-saved")
        post_delete.connect(changes.on_session_deleted, sender=sender, dispatch_uid="rt-session-deleted")
