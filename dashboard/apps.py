from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Operations"

    def ready(self) -> None:
        # Imported here, not at the top: services import models, which need the app registry ready.
        from dashboard.services import audit_record_on_signal
        from velocity.audit import audited

        audited.connect(audit_record_on_signal, dispatch_uid="dashboard-audit-record")
