"""REST broadcast endpoints, included at `realtime/v1/`."""

from django.urls import path

from realtime_bridge import views

app_name = "realtime_bridge"

urlpatterns = [
    path("api/broadcast", views.broadcast, name="broadcast"),
    path("internal/relay", views.relay_view, name="relay"),
    path(
        "api/broadcast/<str:topic>/events/<str:event>",
        views.broadcast_single,
        name="broadcast-single",
    ),
]
