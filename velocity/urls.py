from django.contrib import admin
from django.urls import include, path

from sessions.views import preview_by_path
from velocity.health import health
from velocity.metrics_exporter import metrics_view

admin.site.site_header = "Velocity operations"
admin.site.site_title = "Velocity"

urlpatterns = [
    path("health", health, name="health"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    path("api/v1/webhooks/", include("webhooks.urls")),
    path("api/v1/", include("sessions.urls")),
    path("realtime/v1/", include("realtime_bridge.urls")),
    path("preview/<uuid:session_id>/", preview_by_path, name="preview"),
    path("preview/<uuid:session_id>/<path:path>", preview_by_path, name="preview-path"),
]
