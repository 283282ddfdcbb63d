"""One daemon thread per process that writes what an in-memory buffer collected (``traces``, ``activity``).

The buffers are filled on the event loop, which must never wait on the database; the writer drains them every
``interval()`` seconds, or sooner when woken. Tests switch it off and flush by hand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import close_old_connections

logger = logging.getLogger(__name__)


class BackgroundWriter:
    def __init__(self, name: str, flush: Callable[[], object], interval: Callable[[], float]) -> None:
        self.name, self.flush, self.interval = name, flush, interval
        self.enabled = True
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def ensure(self) -> None:
        """Start the thread unless it runs already, is switched off, or the interval is 0 (flushed by hand)."""
        if not self.enabled or self.interval() <= 0 or self._alive():
            return
        with self._lock:
            if not self._alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            self.wake.wait(self.interval())
            self.wake.clear()
            close_old_connections()  # this thread outlives any request: honour CONN_MAX_AGE and drop dead ones
            try:
                self.flush()
            except Exception:
                logger.exception("background writer failed", extra={"writer": self.name})
