"""Who else hears the operator events: listeners registered by the apps above the endpoint.

Every operator event (``events.Event``: a session's status, a machine's state, an orphan destroyed, a budget
warning...) is handed to the listeners registered here by ``publish.publish``, in the process that made the
write and after its transaction committed (``publish_on_commit``), before it goes to the operator views.
``webhooks`` turns them into signed deliveries. The endpoint knows no app's models, hence a registry rather
than an import (the same shape as ``observers`` for project broadcasts).

A listener runs synchronously in the writer's thread, outside any transaction: it must be quick (write a
row, enqueue a task) and never wait on the network. What it raises is logged and swallowed: a listener can
never break the write that caused the event, nor the other listeners.

A bulk write's events (``publish.batched``) come together, through ``notify_many``: a listener registered
with a ``many`` form hears them in one call (the webhooks read their endpoints once, not once per event);
the others hear them one by one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from realtime_bridge.events import Event

logger = logging.getLogger(__name__)

Listener = Callable[[Event], None]
ManyListener = Callable[[list[Event]], None]
_listeners: list[Listener] = []
_many: dict[Listener, ManyListener] = {}


def register(listener: Listener, *, many: ManyListener | None = None) -> None:
    """Hear every operator event from now on (registering the same callable twice keeps one); ``many``, when
    given, hears a bulk write's events in one call instead (it must do for each what ``listener`` does)."""
    if listener not in _listeners:
        _listeners.append(listener)
    if many is not None:
        _many[listener] = many


def unregister(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)
    _many.pop(listener, None)


def notify(event: Event) -> None:
    """Hand one event to every listener; a failing listener is logged and the others still hear it."""
    for listener in list(_listeners):
        _hand(listener, event)


def notify_many(events: list[Event]) -> None:
    """Hand several events to every listener, in order: in one call to a listener's ``many`` form, else one by one."""
    if not events:
        return
    for listener in list(_listeners):
        many = _many.get(listener)
        if many is None:
            for event in events:
                _hand(listener, event)
            continue
        try:
            many(events)
        except Exception:
            logger.exception("event listener failed", extra={"kind": events[0].kind, "count": len(events)})


def _hand(listener: Listener, event: Event) -> None:
    try:
        listener(event)
    except Exception:
        logger.exception("event listener failed", extra={"kind": event.kind})
