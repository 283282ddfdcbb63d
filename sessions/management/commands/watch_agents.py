"""``manage.py watch_agents``: judge every active session's agent every few seconds, and act (the worker role).

Only the holder of the ``agent-watch`` lease acts, so two workers (or a worker and a ``sweep``) never restart
the same machine twice; a holder that dies loses the lease after ``--lease-ttl`` seconds and another takes over.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from argparse import ArgumentParser
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from sessions.tasks import agent_watch_round

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Probe every active session's agent, mark hung ones degraded, restart their machines, fail the hopeless."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--once", action="store_true", help="one round, then exit")
        parser.add_argument(
            "--interval", type=float, default=None, help="seconds between rounds (AGENT_WATCH_INTERVAL_SECONDS)"
        )
        parser.add_argument("--lease-ttl", type=float, default=None, help="seconds before a dead holder is replaced")

    def handle(self, *args: Any, **options: Any) -> None:
        interval = options["interval"] or settings.AGENT_WATCH_INTERVAL_SECONDS
        ttl = options["lease_ttl"] or max(15.0, 5 * interval)
        holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        if options["once"]:
            self.stdout.write(agent_watch_round(holder=holder, ttl=ttl, release=True))
            return
        stop = threading.Event()
        _on_signals(stop)
        self.stdout.write(f"watch_agents: every {interval:g} s")
        while not stop.is_set():
            summary = _round(holder, ttl)
            if options["verbosity"] > 1:
                self.stdout.write(summary)
            stop.wait(interval)
        agent_watch_round(holder=holder, ttl=ttl, release=True, act=False)
        self.stdout.write("watch_agents: stopped")


def _round(holder: str, ttl: float) -> str:
    """One round; a failure (the database away, a bug) is logged and the next round tries again: the watch
    must not die, or ``velocity.run`` would stop the whole worker with it."""
    try:
        return agent_watch_round(holder=holder, ttl=ttl)
    except Exception:
        logger.exception("agent watch round failed")
        return "agent watch: round failed"
    finally:
        close_old_connections()  # a long-running process: drop a connection the database closed meanwhile


def _on_signals(stop: threading.Event) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
