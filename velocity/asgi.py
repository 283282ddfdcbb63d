"""ASGI entry point: HTTP goes to Django, websockets to the apps' routes."""

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "velocity.settings")

from velocity.asgi_handler import get_one_hop_application

django_asgi_app = get_one_hop_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (needs the app registry ready)
from channels.security.websocket import WebsocketDenier  # noqa: E402
from django.conf import settings  # noqa: E402

from dashboard.routing import ops_application, websocket_urlpatterns  # noqa: E402
from realtime_bridge import relay  # noqa: E402
from realtime_bridge.routing import realtime_application, realtime_urlpatterns  # noqa: E402
from velocity import daphne_denial  # noqa: E402
from velocity.gc_tuning import freeze_startup_objects  # noqa: E402
from velocity.middleware import BodySizeLimit, BrowserOriginValidator, websocket_not_found  # noqa: E402
from velocity.preview_hosts import is_preview_host, scope_host  # noqa: E402

relay.mark_server_process()
daphne_denial.install()  # so an unknown websocket path can be a 404, not daphne's 403

# The realtime endpoint authenticates with Supabase tokens, not Django sessions: routing it outside
# AuthMiddlewareStack saves that middleware's work on every socket (about 15% of a fan-out's CPU).
realtime_websockets = realtime_application
# The operator streams ride a session cookie, so a page on another site must not open them (the realtime
# endpoint authenticates each socket with a token and, like Supabase, serves every origin).
session_websockets = BrowserOriginValidator(ops_application)
denied_websockets = WebsocketDenier.as_asgi()
WEBSOCKET_ROUTES = [*realtime_urlpatterns, *websocket_urlpatterns]


def _routed(path: str) -> bool:
    """Whether a websocket route serves ``path``: the routers raise on others (an HTTP 500 at the handshake)."""
    return any(route.pattern.match(path.removeprefix("/")) for route in WEBSOCKET_ROUTES)


async def websocket_router(scope: dict[str, Any], receive: Any, send: Any) -> Any:
    if is_preview_host(scope_host(scope)):
        # A preview host serves strangers' code: neither /ws/ops/ nor the realtime endpoint answers there.
        return await denied_websockets(scope, receive, send)
    if not _routed(scope["path"]):  # e.g. /realtime/v1/websocket/websocket: a client given the socket's URL
        return await websocket_not_found(scope, receive, send)
    app = realtime_websockets if scope["path"].startswith("/realtime/") else session_websockets
    return await app(scope, receive, send)


application = ProtocolTypeRouter({"http": BodySizeLimit(django_asgi_app), "websocket": websocket_router})

if settings.WEB_GC_FREEZE:
    freeze_startup_objects()
