"""Who else hears a project's broadcasts: observers registered by the apps above the endpoint.

The endpoint (and, in client mode, the bridge) mirrors every broadcast on ``project:{id}`` to the operator
views through ``publish.mirror_broadcast``; it also hands each one to the observers registered here
(``sessions`` keeps the last agent log lines and file-sync events of each session, so a reload still shows
them). The endpoint knows no app's models, hence a registry rather than an import.

An observer runs on the event loop of the process that saw the broadcast, for every broadcast: it must
return at once and never block (buffer, and write elsewhere). What it raises is logged and swallowed: an
observer can never break delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Observed:
    """One broadcast on a project's channel, as the orchestrator saw it.

    ``summary`` is what the operator views get (``metrics.mirror_summary``); ``payload`` is the broadcast's
    own payload (an observer may need more than the summary keeps, e.g. every path a ``files:synced`` acks).
    ``source`` is ``endpoint`` or ``bridge``; ``at`` is when this process saw it (aware UTC).
    """

    project_id: str
    event: str
    summary: dict[str, Any]
    payload: dict[str, Any]
    source: str
    at: datetime


Observer = Callable[[Observed], None]
_observers: list[Observer] = []


def register(observer: Observer) -> None:
    """Hear every project broadcast from now on (registering the same callable twice keeps one)."""
    if observer not in _observers:
        _observers.append(observer)


def unregister(observer: Observer) -> None:
    if observer in _observers:
        _observers.remove(observer)


def notify(observed: Observed) -> None:
    """Hand one broadcast to every observer; a failing observer is logged and the others still hear it."""
    for observer in list(_observers):
        try:
            observer(observed)
        except Exception:
            logger.exception("broadcast observer failed", extra={"event": observed.event})
