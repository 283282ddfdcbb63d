"""Websocket routes of the realtime endpoint and the operator streams."""

from django.urls import path

from realtime_bridge import consumers

websocket_urlpatterns = [
    path("realtime/v1/websocket", consumers.RealtimeConsumer.as_asgi()),
    path("ws/ops/", consumers.OpsConsumer.as_asgi()),
    path("ws/ops/sessions/<uuid:session_id>/", consumers.OpsSessionConsumer.as_asgi()),
]
