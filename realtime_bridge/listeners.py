"""Who else hears the operator events: listeners registered by the apps above the endpoint.

Every operator event (``events.Event``: a session's status, a machine's state, an orphan destroyed, a budget
warning...) is handed to the listeners registered here by ``publish.publish``, in the process that made the
write and after its transaction committed (``publish_on_commit``), before it goes to the operator views.
``webhooks`` turns them into signed deliveries. The endpoint knows no app's models, hence a registry rather
than an import (the same shape as ``observers`` for project broadcasts).

A listener runs synchronously in the writer's thread, outside any transaction: it must be quick (write a
row, enqueue a task) and never wait on the network. What it raises is logged and swallowed: a listener can
never break the write that caused the event, nor the other listeners.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from realtime_bridge.events import Event

logger = logging.getLogger(__name__)

Listener = Callable[[Event], None]
_listeners: list[Listener] = []


def register(listener: Listener) -> None:
    """Hear every operator event from now on (registering the same callable twice keeps one)."""
    if listener not in _listeners:
        _listeners.append(listener)


def unregister(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def notify(event: Event) -> None:
    """Hand one event to every listener; a failing listener is logged and the others still hear it."""
    for listener in list(_listeners):
        try:
            listener(event)
        except Exception:
            logger.exception("event listener failed", extra={"kind": event.kind})
