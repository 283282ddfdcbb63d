"""The ASGI websocket denial response (``websocket.http.response``) for daphne, which lacks it.

daphne answers every websocket the application refuses before accepting with HTTP 403, so an unknown
websocket path could only be a 403 (or, when a router raised, a 500). The ASGI spec's denial response
extension lets the application choose the status; uvicorn and hypercorn implement it. ``install()``
adds it to daphne: the scope advertises the extension, and ``websocket.http.response.start`` with its
``body`` fails the handshake with that status. Installed by ``velocity.asgi``; idempotent.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

EXTENSION = "websocket.http.response"


def install() -> None:
    from autobahn.websocket.types import ConnectionDeny
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    if getattr(WebSocketProtocol, "_velocity_denial", False):
        return
    handle_reply, create_application = WebSocketProtocol.handle_reply, Server.create_application

    def deny(protocol: Any, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.http.response.start":
            protocol.denial_status = int(message.get("status", 403))
        elif not message.get("more_body") and hasattr(protocol, "handshake_deferred"):
            status = getattr(protocol, "denial_status", 403)
            protocol.handshake_deferred.errback(ConnectionDeny(code=status, reason=HTTPStatus(status).phrase))
            del protocol.handshake_deferred
            protocol.server.protocol_disconnected(protocol)

    def patched_reply(self: Any, message: dict[str, Any]) -> None:
        if str(message.get("type", "")).startswith(EXTENSION):
            deny(self, message)
        else:
            handle_reply(self, message)

    def patched_create(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[EXTENSION] = {}
        return create_application(self, protocol, scope)

    WebSocketProtocol.handle_reply = patched_reply
    Server.create_application = patched_create
    WebSocketProtocol._velocity_denial = True
