"""The ASGI websocket denial response (``websocket.http.response``) for daphne, which lacks it.

daphne answers every websocket the application refuses before accepting with HTTP 403, so an unknown
websocket path could only be a 403 (or, when a router raised, a 500). The ASGI spec's denial response
extension lets the application choose the status, headers and body; uvicorn and hypercorn implement it.
``install()`` adds it to daphne: the scope advertises the extension, ``websocket.http.response.start``
sets the status and headers, and the ``websocket.http.response.body`` messages (until ``more_body`` is
false) are the body sent before the connection closes. Installed by ``velocity.asgi``; idempotent.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

EXTENSION = "websocket.http.response"


def _header_lines(headers: Any) -> list[tuple[str, str]]:
    """The application's headers as text, without any length it computed (the body decides it)."""
    lines = []
    for name, value in headers or ():
        name, value = bytes(name).decode("latin-1"), bytes(value).decode("latin-1")
        if name.lower() != "content-length" and "\n" not in name + value and "\r" not in name + value:
            lines.append((name, value))
    return lines


def _start(protocol: Any, message: dict[str, Any]) -> None:
    protocol.denial_status = int(message.get("status", 403))
    protocol.denial_headers = _header_lines(message.get("headers"))
    protocol.denial_body = b""


def _finish(protocol: Any) -> None:
    from autobahn.websocket.types import ConnectionDeny

    status = getattr(protocol, "denial_status", 403)
    body = getattr(protocol, "denial_body", b"")
    protocol.denial_headers = [*getattr(protocol, "denial_headers", []), ("Content-Length", str(len(body)))]
    protocol.handshake_deferred.errback(ConnectionDeny(code=status, reason=HTTPStatus(status).phrase))
    del protocol.handshake_deferred
    protocol.server.protocol_disconnected(protocol)


def deny(protocol: Any, message: dict[str, Any]) -> None:
    """Handle one denial message of the application (start, then body chunks)."""
    if message["type"] == "websocket.http.response.start":
        _start(protocol, message)
    elif hasattr(protocol, "handshake_deferred"):
        protocol.denial_body = getattr(protocol, "denial_body", b"") + bytes(message.get("body", b""))
        if not message.get("more_body"):
            _finish(protocol)


def install() -> None:
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    if getattr(WebSocketProtocol, "_velocity_denial", False):
        return
    handle_reply, create_application = WebSocketProtocol.handle_reply, Server.create_application
    send_error = WebSocketProtocol.sendHttpErrorResponse

    def patched_reply(self: Any, message: dict[str, Any]) -> None:
        if str(message.get("type", "")).startswith(EXTENSION):
            deny(self, message)
        else:
            handle_reply(self, message)

    def patched_create(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        if scope.get("type") == "websocket":
            scope.setdefault("extensions", {})[EXTENSION] = {}
        return create_application(self, protocol, scope)

    def patched_error(self: Any, code: int, reason: str, headers: Any = None) -> None:
        """autobahn writes the status line and headers only; a denial also has its headers and body."""
        denial = getattr(self, "denial_headers", None)
        send_error(self, code, reason, [*(headers or []), *(denial or [])])
        if denial is not None:
            self.sendData(getattr(self, "denial_body", b""))

    WebSocketProtocol.handle_reply = patched_reply
    WebSocketProtocol.sendHttpErrorResponse = patched_error
    Server.create_application = patched_create
    WebSocketProtocol._velocity_denial = True
