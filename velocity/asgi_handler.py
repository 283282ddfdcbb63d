"""Django's ASGI handler with one thread hop per sync request.

Django's own ``ASGIHandler`` gives every request a thread of its own (``ThreadSensitiveContext``), sends
``request_started`` and ``request_finished`` through the event loop, runs the middleware chain async and
hands each sync piece to that thread and back: about a dozen crossings between the event loop and a thread
per request. Under 16 concurrent clients on two cores those crossings, not the view, were the API's
bottleneck (docs/benchmarks.md, *REST under load*).

Here a read of a sync view (every REST and dashboard page; ``serves_sync`` says which requests) crosses
once: its body is read on the event loop, then one call on a fixed pool of ``WEB_THREADS`` threads sends
``request_started``, builds the request, runs the sync middleware chain and the view, and closes the response
(``request_finished``), as a threaded WSGI server would. The threads are few and long-lived, so each keeps its
database connection instead of opening one per request. Async views (``/health``, the REST broadcast, the
relay), writes that may wait on a provider, requests held open and streaming responses keep Django's path.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.db import connections
from django.http import HttpResponseBase
from django.urls import Resolver404, get_resolver, set_script_prefix

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class OneHopASGIHandler(ASGIHandler):
    def __init__(self, threads: int | None = None) -> None:
        super().__init__()
        self.sync_chain = BaseHandler()
        self.sync_chain.load_middleware(is_async=False)
        count = threads or settings.WEB_THREADS
        self.executor = ThreadPoolExecutor(count, "request", initializer=keep_connections)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and serves_sync(scope["path"], scope["method"]):
            await self.handle_in_one_thread(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def handle_in_one_thread(self, scope: Scope, receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        loop = asyncio.get_running_loop()
        # A fresh context per request: nothing one request activates (time zone, urlconf) leaks to the next.
        in_context = functools.partial(contextvars.Context().run, self.respond, scope, body_file, loop)
        response = await loop.run_in_executor(self.executor, in_context)
        try:
            await self.send_response(response, send)
        except asyncio.CancelledError:
            pass  # the client went away while the answer was being sent
        finally:
            if response.streaming:
                await loop.run_in_executor(self.executor, _close, response, body_file)

    def respond(self, scope: Scope, body_file: Any, loop: asyncio.AbstractEventLoop) -> HttpResponseBase:
        """The whole request in this thread; a plain response is closed (``request_finished``) before it is sent."""
        _lend_event_loop(loop)
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error = self.create_request(scope, body_file)
        response: Any = error if request is None else self.sync_chain.get_response(request)
        response._handler_class = self.__class__
        if not response.streaming:
            _close(response, body_file)
        return response


def _lend_event_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Let ``async_to_sync`` in a request thread (a channel-layer publication) run on the server's event loop,
    as it does from Django's own request threads, instead of starting an event loop of its own per call."""
    SyncToAsync.threadlocal.main_event_loop = loop
    SyncToAsync.threadlocal.main_event_loop_pid = os.getpid()


def keep_connections() -> None:
    """A request thread keeps its database connections for ``WEB_THREAD_CONN_MAX_AGE`` seconds (Django's
    ``CONN_MAX_AGE``, for these threads only): they are few and live as long as the process, so the connections
    stay bounded (``WEB_THREADS`` per process), where Django's thread per request would leave one per request
    behind. Other threads (async views, the event loop) keep ``CONN_MAX_AGE``."""
    keep = settings.WEB_THREAD_CONN_MAX_AGE
    if keep <= 0:
        return
    for connection in connections.all(initialized_only=False):
        _make_pool(connection)
        connection.settings_dict = {**connection.settings_dict, "CONN_MAX_AGE": keep}


def _make_pool(connection: Any) -> None:
    """With ``DATABASE_POOL``, the process's pool is made from the shared settings (``CONN_MAX_AGE`` 0) before this
    thread's are changed: Django refuses to make a pool for a connection that is kept."""
    getattr(connection, "pool", None)  # PostgreSQL's wrapper makes the process's pool on first use; SQLite has none


def _close(response: HttpResponseBase, body_file: Any) -> None:
    try:
        response.close()
    finally:
        body_file.close()


@functools.lru_cache(maxsize=4096)
def serves_sync(path: str, method: str) -> bool:
    """Whether a ``method`` request for ``path`` takes the one-hop path.

    Reads of sync views do (and a 404 from the sync chain), plus the methods a view lists in ``one_hop_methods``
    (the agents' frequent reports). A view's ``held_methods`` never do: a request held open (the warm agent's
    assignment long poll) would keep one of the few request threads for its whole wait. Other writes keep
    Django's thread per request: they may wait on a machine provider, and they are not the hot path.
    """
    try:
        match = get_resolver().resolve(path)
    except Resolver404:
        return method in READ_METHODS
    if asyncio.iscoroutinefunction(match.func) or getattr(match.func, "view_is_async", False):
        return False
    view_class = getattr(match.func, "view_class", None)
    if method in getattr(view_class, "held_methods", ()):
        return False
    return method in READ_METHODS or method in getattr(view_class, "one_hop_methods", ())


def get_one_hop_application() -> OneHopASGIHandler:
    """``get_asgi_application`` with this handler."""
    import django

    django.setup(set_prefix=False)
    return OneHopASGIHandler()
