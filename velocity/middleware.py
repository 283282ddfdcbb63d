"""Guards in front of the views: a request body size limit, CORS for browser editors, the API's error shape
on every failure, and the operator sockets' Origin check.

daphne (Twisted) receives a whole request body before the application sees any of it, and Django's
ASGI handler then copies it into a temporary file before any middleware runs. `BodySizeLimit` sits
between the two, in the ASGI application: it refuses a body over ``API_MAX_BODY_BYTES`` from its
``Content-Length``, or, for chunked bodies without one, as soon as the bytes received pass the limit,
so an oversized body is never spooled by Django nor parsed by a view.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from channels.security.websocket import OriginValidator
from corsheaders.middleware import CorsMiddleware as BaseCorsMiddleware
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from sessions.errors import DEFAULT_CODES, error_body
from velocity.preview_hosts import is_preview_host, normalize_host

logger = logging.getLogger(__name__)

# Paths whose views read request bodies themselves; others keep Django's own limits.
LIMITED_PREFIXES = ("/api/", "/realtime/")
API_PREFIX = "/api/"

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _preview_host(host: str) -> bool:
    """A preview host serves only the preview's own paths (its own /api/ included): ours never answer there."""
    return is_preview_host(normalize_host(host))


def _declared_length(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def too_large_body(path: str) -> dict[str, Any]:
    """The 413 body for ``path``: the API's error shape, or Realtime's message."""
    limit = settings.API_MAX_BODY_BYTES
    if path.startswith(API_PREFIX):
        message = "the request body is larger than the limit"
        return error_body("request.too_large", message, {"limit_bytes": limit})
    return {"message": "Payload too large"}


def cors_origin_headers(path: str, origin: str) -> dict[str, str]:
    """What `CorsMiddleware` would add for ``origin``, for the 413 answered before Django runs: a browser
    editor then reads the 413 instead of a CORS failure."""
    if not re.match(settings.CORS_URLS_REGEX, path):
        return {}
    if settings.CORS_ALLOW_ALL_ORIGINS:
        return {"Access-Control-Allow-Origin": "*", "Vary": "origin"}
    if origin and origin.rstrip("/") in settings.CORS_ALLOWED_ORIGINS:
        return {"Access-Control-Allow-Origin": origin, "Vary": "origin"}
    return {"Vary": "origin"}


class CorsMiddleware(BaseCorsMiddleware):
    """django-cors-headers on ``CORS_URLS_REGEX``, except on preview hosts: there ``/api/`` is the preview's
    own, and its preflights belong to the preview (``PreviewHostMiddleware``)."""

    def is_enabled(self, request: HttpRequest) -> bool:
        return not _preview_host(request.META.get("HTTP_HOST", "")) and super().is_enabled(request)


class BodySizeLimit:
    """ASGI middleware for HTTP: 413 for bodies over ``API_MAX_BODY_BYTES`` on the limited paths."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._limited(scope):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if _declared_length(headers.get(b"content-length", b"").decode("latin-1")) > settings.API_MAX_BODY_BYTES:
            await self._refuse(scope, send)
            return
        messages = await self._read_within_limit(receive)
        if messages is None:
            await self._refuse(scope, send)
            return
        await self.app(scope, _replay(messages, receive), send)

    @staticmethod
    def _limited(scope: Scope) -> bool:
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        return str(scope.get("path", "")).startswith(LIMITED_PREFIXES) and not _preview_host(host)

    @staticmethod
    async def _read_within_limit(receive: Receive) -> list[Message] | None:
        """The body's messages, or None once more bytes arrived than the limit allows."""
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # a disconnect: Django handles it
                return messages
            received += len(message.get("body", b""))
            if received > settings.API_MAX_BODY_BYTES:
                return None
            if not message.get("more_body", False):
                return messages

    @staticmethod
    async def _refuse(scope: Scope, send: Send) -> None:
        logger.info("request body too large", extra={"path": scope.get("path"), "limit": settings.API_MAX_BODY_BYTES})
        path, origin = str(scope.get("path", "")), dict(scope.get("headers") or []).get(b"origin", b"")
        body = too_large_body(path)
        extra = cors_origin_headers(path, origin.decode("latin-1"))
        content = json.dumps(body).encode()
        response_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        response_headers += [(name.lower().encode(), value.encode()) for name, value in extra.items()]
        await send({"type": "http.response.start", "status": 413, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out the buffered messages, then the connection's own (disconnects)."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


class ApiErrorShapeMiddleware:
    """Under ``/api/``, every error is the contract's JSON, whatever raised it and whatever ``DEBUG`` says.

    Django turns exceptions raised outside DRF (a disallowed host, an unhandled error, an oversized body
    read through ``request.body``) into HTML pages, with tracebacks when ``DEBUG`` is on. This runs
    outside those conversions and replaces any non-JSON error response with ``{"error": ...}``.
    It also refuses a declared ``Content-Length`` over the limit for servers without `BodySizeLimit`.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX) or _preview_host(request.META.get("HTTP_HOST", "")):
            return self.get_response(request)
        if _declared_length(request.META.get("CONTENT_LENGTH")) > settings.API_MAX_BODY_BYTES:
            return JsonResponse(too_large_body(request.path), status=413)
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            return _in_error_shape(response)
        return response


class SyncChainEnd:
    """Last in ``MIDDLEWARE``, sync only: it keeps the whole middleware chain in one thread under ASGI.

    Django runs a middleware that can be both sync and async (all of Django's own) in the mode of the handler
    it wraps; under ASGI the innermost handler is async, so without this each of them ran async, and
    ``MiddlewareMixin`` then hands every ``process_request``/``process_response`` to a thread and back: a
    dozen hops through the event loop per request, which made the event loop the bottleneck of the list
    under 16 concurrent clients (docs/benchmarks.md, *REST under load*). Below a sync-only middleware, the
    chain runs sync in the request's thread: one hop in, one to the view, one back.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)


def _in_error_shape(response: HttpResponse) -> HttpResponse:
    status = response.status_code
    shaped = JsonResponse(error_body(DEFAULT_CODES.get(status, "error"), response.reason_phrase.lower()), status=status)
    for name, value in response.items():  # Allow, Retry-After, Vary... keep their meaning
        if name.lower() not in ("content-type", "content-length"):
            shaped[name] = value
    return shaped


async def websocket_not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """A websocket handshake on a path nothing serves: 404 where the server offers the ASGI denial response
    (daphne through `velocity.daphne_denial`), else a refused handshake (403)."""
    await receive()  # websocket.connect
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close"})
        return
    headers = [(b"content-type", b"application/json")]
    await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": b'{"message":"Not found"}'})


class BrowserOriginValidator(OriginValidator):
    """channels' ``AllowedHostsOriginValidator``, read per connection, that lets clients without ``Origin`` in.

    Browsers send ``Origin`` on every websocket handshake: a foreign one is another site's page riding the
    operator's session cookie (cross-site websocket hijacking), and is refused. A client without one is
    not a browser and has no ambient cookie to abuse; the consumer still asks for a staff session.
    """

    def __init__(self, application: Any) -> None:
        super().__init__(application, [])

    def valid_origin(self, parsed_origin: Any) -> bool:
        return parsed_origin is None or self.validate_origin(parsed_origin)

    def validate_origin(self, parsed_origin: Any) -> bool:
        hosts = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
        return any(pattern == "*" or self.match_allowed_origin(parsed_origin, pattern) for pattern in hosts)
