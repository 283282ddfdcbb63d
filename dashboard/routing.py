"""Websocket routes of the operator streams. They ride the staff session cookie, so the ASGI entry point
routes them through `AuthMiddlewareStack` and the browser `Origin` check."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from django.urls import path

from dashboard import consumers

websocket_urlpatterns = [
    path("ws/ops/", consumers.OpsConsumer.as_asgi()),
    path("ws/ops/sessions/<uuid:session_id>/", consumers.OpsSessionConsumer.as_asgi()),
]
# The operator streams' websocket application (session cookie → user); the ASGI entry point adds the
# browser `Origin` check and the preview-host refusal around it.
ops_application = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
