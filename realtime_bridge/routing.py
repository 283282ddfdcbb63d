"""Websocket routes of the realtime endpoint (the operator streams are in `dashboard/routing.py`).

`realtime_urlpatterns` needs no Django session or user: an ASGI entry point may route it outside
`AuthMiddlewareStack`, which saves that middleware's work on every frame fanned out (about 15% of
the server's CPU per delivery in `bench/realtime_fanout.py`).
"""

from channels.routing import URLRouter
from django.urls import path

from realtime_bridge import consumers

realtime_urlpatterns = [
    path("realtime/v1/websocket", consumers.RealtimeConsumer.as_asgi()),
]
# The endpoint's websocket application; the ASGI entry point adds the preview-host refusal around it.
realtime_application = URLRouter(realtime_urlpatterns)
